#!/usr/bin/env bash
# Install what the tests need (Debian packages, Python packages), make sure PostgreSQL is
# running, then lint, type-check and run the whole test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

# Verifiers the tests run against what signgate produces (openssl, the JDK's jarsigner,
# osslsigncode, gpg and sqop), mingw to build real Windows executables to sign, Node.js for
# the Sigstore verifier, the PostgreSQL server, SoftHSM2 (the PKCS#11 token of the HSM tests),
# and gcc for the optional C sum of the PE checksum (formats/_pe_checksum.c; without it the
# install goes on, pure Python sums, and the test of the C sum is skipped).
debian_packages=(openssl postgresql openjdk-17-jdk-headless osslsigncode gnupg sqop
                 gcc-mingw-w64-x86-64-win32 clamav-daemon softhsm2 gcc
                 # signgate-gpg's callers (tests/e2e/test_gpg_compat.py): git commit -S,
                 # rpmbuild/rpmsign/rpmkeys, apt-ftparchive (apt-get itself is always there)
                 git rpm apt-utils)
# gcab: makes the CAB archives that tests/e2e/test_authenticode_kinds.py signs
debian_packages+=(gcab)
# msitools (msiinfo, msiextract) and wixl: real MSI packages to sign and read back
# (tests/e2e/test_authenticode_msi.py).
debian_packages+=(msitools wixl)
# ssh-keygen (-Y sign/verify/check-novalidate; git, above, signs with gpg.format=ssh
# through signgate-ssh-keygen): the SSH signature tests, tests/*/test_sshsig.py.
debian_packages+=(openssh-client)
# chromium: the web console's browser tests (tests/e2e/test_web_browser.py, Playwright)
debian_packages+=(chromium)
# Node.js may come from elsewhere (NodeSource bundles npm); Debian's own only when absent.
command -v npm >/dev/null 2>&1 || debian_packages+=(nodejs npm)
missing=()
for p in "${debian_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing Debian packages: ${missing[*]}"
  sudo_cmd=(); [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# PostgreSQL on 127.0.0.1:5432: the end-to-end suite runs on it as well as on SQLite.
if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  echo "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi

# The Sigstore reference verifier for JavaScript (@sigstore/verify), pinned by its lock file.
if [ -f tests/interop/sigstore/package-lock.json ]; then
  npm ci --silent --no-audit --no-fund --prefix tests/interop/sigstore
fi

python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[dev]'

# Bytecode for signgate's own modules, once: the tests start thousands of signgate
# processes, and a shell with PYTHONDONTWRITEBYTECODE set would have each one compile them
# again (0.45 s of CPU per CLI command instead of 0.25 s).
.venv/bin/python -m compileall -q src tests >/dev/null

.venv/bin/ruff check src tests bench
.venv/bin/mypy
# The layering (pyproject.toml [tool.importlinter]): no import up a layer, none between
# sibling use cases, no cycle.
.venv/bin/lint-imports --no-logo
# Two workers (the machine's two cores); a test file's tests stay on one worker, as they
# share that file's server.
exec .venv/bin/python -m pytest -n 2 --dist loadfile "$@"
