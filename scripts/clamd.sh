#!/usr/bin/env bash
# Prepare and start a clamd for signgate.
#
#   scripts/clamd.sh [--prepare-only] [--max-size MB] [--signatures DIR]... STATE_DIR
#
# STATE_DIR gets:
#   db/          signgate's own signatures (src/signgate/scan/signatures), the organisation's
#                (each --signatures DIR, and the directories in SIGNGATE_CLAMD_SIGNATURES,
#                colon-separated), and links to the official ClamAV databases
#                ($CLAMAV_DATABASE_DIR, default /var/lib/clamav: *.cvd, *.cld, *.cud) when
#                present. In production, freshclam keeps those up to date; without them
#                clamd knows only the signatures above.
#   clamd.conf   written from src/signgate/scan/clamd.conf.in
#   clamd.sock   the Unix socket signgate connects to
#   tmp/, clamd.log, clamd.pid
#
# Then it replaces itself with clamd in the foreground (the caller, a service manager or the
# test fixture, owns the process; SIGTERM stops it). --prepare-only writes everything and
# prints the command instead. --max-size is the largest artifact, in MiB, that clamd accepts
# (StreamMaxLength and MaxFileSize; default 1000; ClamAV cannot scan files over 2 GiB).
# Re-run after freshclam adds a database file of a new name, or after editing signatures.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
prepare_only=0
max_mb=1000
signature_dirs=()
state_dir=""
while [ $# -gt 0 ]; do
  case "$1" in
    --prepare-only) prepare_only=1 ;;
    --max-size) max_mb="$2"; shift ;;
    --signatures) signature_dirs+=("$2"); shift ;;
    -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "clamd.sh: unknown option $1" >&2; exit 2 ;;
    *) state_dir="$1" ;;
  esac
  shift
done
if [ -z "$state_dir" ]; then
  echo "usage: scripts/clamd.sh [--prepare-only] [--max-size MB] [--signatures DIR]... STATE_DIR" >&2
  exit 2
fi
if ! [[ "$max_mb" =~ ^[1-9][0-9]*$ ]] || [ "$max_mb" -gt 2047 ]; then
  echo "clamd.sh: --max-size must be a whole number of MiB from 1 to 2047" >&2
  exit 2
fi
if ! command -v clamd >/dev/null 2>&1 && [ "$prepare_only" -eq 0 ]; then
  echo "clamd.sh: clamd is not installed (Debian: apt-get install clamav-daemon)" >&2
  exit 1
fi
if [ -n "${SIGNGATE_CLAMD_SIGNATURES:-}" ]; then
  IFS=: read -r -a extra <<< "$SIGNGATE_CLAMD_SIGNATURES"
  signature_dirs+=("${extra[@]}")
fi

# signgate's package directory: from this checkout, else from the installed package.
pkg="$here/../src/signgate/scan"
if [ ! -f "$pkg/clamd.conf.in" ]; then
  pkg="$("${PYTHON:-python3}" -c 'import pathlib, signgate.scan as s; print(pathlib.Path(s.__file__).parent)')"
fi

mkdir -p "$state_dir"
state_dir="$(cd "$state_dir" && pwd)"
db="$state_dir/db"
rm -rf "$db"
mkdir -p "$db" "$state_dir/tmp"

# Signature files ClamAV loads from its database directory (signatures.md in the ClamAV
# manual): hashes, body and logical signatures, YARA rules, allow lists, ...
copy_signatures() {
  local dir="$1" f n=0
  if [ ! -d "$dir" ]; then
    echo "clamd.sh: signature directory $dir does not exist" >&2
    exit 1
  fi
  for f in "$dir"/*; do
    case "$f" in
      *.hdb|*.hsb|*.mdb|*.msb|*.imp|*.ndb|*.ldb|*.cdb|*.cbc|*.pdb|*.gdb|*.wdb|*.ftm|*.idb|\
      *.fp|*.sfp|*.ign2|*.crb|*.yar|*.yara)
        # Prefix with the directory's position so two directories may use the same name.
        cp "$f" "$db/$(printf '%02d' "$copied")-$(basename "$f")"; n=$((n + 1)) ;;
    esac
  done
  echo "clamd.sh: $n signature file(s) from $dir" >&2
}
copied=0
copy_signatures "$pkg/signatures"
for d in "${signature_dirs[@]}"; do
  copied=$((copied + 1))
  copy_signatures "$d"
done

official="${CLAMAV_DATABASE_DIR:-/var/lib/clamav}"
linked=0
for f in "$official"/*.cvd "$official"/*.cld "$official"/*.cud; do
  [ -e "$f" ] || continue
  ln -s "$f" "$db/$(basename "$f")"
  linked=$((linked + 1))
done
if [ "$linked" -eq 0 ]; then
  echo "clamd.sh: no official databases in $official (run freshclam there): clamd will" \
       "know only signgate's and the organisation's signatures" >&2
fi

scan_mb=$((max_mb * 4 > 4000 ? 4000 : max_mb * 4))
sed -e "s|@SOCKET@|$state_dir/clamd.sock|" \
    -e "s|@PID_FILE@|$state_dir/clamd.pid|" \
    -e "s|@TEMP_DIR@|$state_dir/tmp|" \
    -e "s|@DATABASE_DIR@|$db|" \
    -e "s|@LOG_FILE@|$state_dir/clamd.log|" \
    -e "s|@STREAM_MAX_LENGTH@|${max_mb}M|" \
    -e "s|@MAX_FILE_SIZE@|${max_mb}M|" \
    -e "s|@MAX_SCAN_SIZE@|${scan_mb}M|" \
    -e "s|@MAX_SCAN_TIME_MS@|300000|" \
    "$pkg/clamd.conf.in" > "$state_dir/clamd.conf"

echo "clamd.sh: socket $state_dir/clamd.sock" >&2
if [ "$prepare_only" -eq 1 ]; then
  echo "clamd --config-file=$state_dir/clamd.conf"
  exit 0
fi
exec clamd --config-file="$state_dir/clamd.conf"
