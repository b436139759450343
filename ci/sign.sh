#!/bin/sh
# signgate CI signing: sign a job's build outputs with a key held by signgate and gather the
# receipts. The GitHub Action (action.yml) runs this file; the GitLab CI template
# (ci/gitlab/signgate.gitlab-ci.yml) carries the same text as its script, because an
# included template brings no files (tests/e2e/test_ci_templates.py keeps the two equal).
# POSIX sh; everything comes from the environment:
#   SIGNGATE_URL           the signgate server (required)
#   SIGNGATE_KEY           the key, PROJECT/NAME (required)
#   SIGNGATE_FILES         shell patterns of the files to sign, separated by spaces or newlines,
#                          relative to the working directory; each must match a file
#   SIGNGATE_FORMAT        raw (default), cms, authenticode, jar, openpgp, dsse or sigstore
#   SIGNGATE_RECEIPTS_DIR  where copies of what signgate wrote (signatures, .tsr, .pem,
#                          .proof) go, under the files' relative paths, with
#                          signgate-receipts.json (the receipts; default: signgate-receipts)
#   SIGNGATE_TOKEN         an API token; else SIGNGATE_OIDC_TOKEN (or GitLab's
#                          SIGNGATE_ID_TOKEN): the job's OIDC token, which signgate exchanges
#   GITHUB_OUTPUT          when set, receipts-dir= and signed-count= are appended to it
set -eu
fail() { echo "signgate: $1" >&2; exit "${2:-7}"; }

[ -n "${SIGNGATE_URL:-}" ] || fail "SIGNGATE_URL is not set: the signgate server, e.g. https://sign.example.com" 10
[ -n "${SIGNGATE_KEY:-}" ] || fail "SIGNGATE_KEY is not set: the key to sign with, PROJECT/NAME"
[ -n "${SIGNGATE_FILES:-}" ] || fail "SIGNGATE_FILES is not set: the files to sign (shell patterns)"
if [ -n "${SIGNGATE_TOKEN:-}" ]; then
  unset SIGNGATE_OIDC_TOKEN  # an API token given: the CLI would prefer the OIDC token
elif [ -z "${SIGNGATE_OIDC_TOKEN:-}" ] && [ -n "${SIGNGATE_ID_TOKEN:-}" ]; then
  SIGNGATE_OIDC_TOKEN=$SIGNGATE_ID_TOKEN
  export SIGNGATE_OIDC_TOKEN
fi
receipts=${SIGNGATE_RECEIPTS_DIR:-signgate-receipts}

# Each pattern on its own: split with globbing off, then expanded; regular files only, once.
newline='
'
seen=$newline
set -f
set --
for pattern in $SIGNGATE_FILES; do
  set +f
  matched=
  for file in $pattern; do
    [ -f "$file" ] || continue
    matched=1
    case $seen in *"$newline$file$newline"*) continue ;; esac
    seen=$seen$file$newline
    set -- "$@" "$file"
  done
  set -f
  [ -n "$matched" ] || fail "no file matches '$pattern' (in $(pwd))"
done
set +f
[ "$#" -gt 0 ] || fail "SIGNGATE_FILES names no file"

mkdir -p "$receipts"
status=0
signgate sign --key "$SIGNGATE_KEY" --format "${SIGNGATE_FORMAT:-raw}" --json --no-progress \
  -- "$@" > "$receipts/signgate-receipts.json" || status=$?

# The receipts: signgate's --json (a list; one file's receipt gains its "file"), a copy of
# every file it wrote beside an artifact (not the artifact itself, signed in place by
# authenticode and jar), a line per file, a last line unless signgate failed alone with its
# one line, and the outputs.
python3 - "$receipts" "$1" "$#" "$status" <<'EOF'
import json, os, shutil, sys
from pathlib import Path

receipts, first, total, status = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
summary = receipts / "signgate-receipts.json"
text = summary.read_text("utf-8").strip()
results = json.loads(text) if text else []
if isinstance(results, dict):
    results = [{"file": first, **results}]
signed = [r for r in results if "signature_id" in r]
for r in signed:
    for field in ("signature_file", "certificate_file", "timestamp_file", "proof_file"):
        written = Path(r.get(field) or r["file"])
        if written == Path(r["file"]):
            continue  # none, or the artifact itself
        inside = not written.is_absolute() and ".." not in written.parts
        place = receipts / (written if inside else written.name)
        place.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(written, place)
    print(f"signed {r['file']} with {r['key']} version {r['key_version']} -> "
          f"{r['signature_file']} (log index {r.get('log_index')})")
summary.write_text(json.dumps(results, indent=2) + "\n", "utf-8")
if signed or status == "0":
    print(f"signed {len(signed)} of {total} files; receipts in {receipts}/")
if os.environ.get("GITHUB_OUTPUT"):
    with open(os.environ["GITHUB_OUTPUT"], "a", encoding="utf-8") as out:
        out.write(f"receipts-dir={receipts.resolve()}\nsigned-count={len(signed)}\n")
EOF
exit "$status"
