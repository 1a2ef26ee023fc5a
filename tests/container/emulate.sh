#!/usr/bin/env bash
# Emulate the grader's run of the committed tree, with no network and no GPU.
#
#   bash tests/container/emulate.sh                       # fresh venv from requirements.txt alone
#   bash tests/container/emulate.sh --reuse-site DIR      # borrow installed packages (fast; tests)
#
# 1. `git archive HEAD` staged as a fresh home (what repo2docker copies, minus ignored files);
# 2. a venv from requirements.txt alone (or, with --reuse-site, one that borrows DIR's packages);
# 3. postBuild, as repo2docker would run it;
# 4. a generated payload with the bad files of real life, made read-only;
# 5. run.sh as the grader runs it: only TEST_DIRECTORY, OUTPUT_PATH, HOME, PATH; cwd /; no network.
#    With bubblewrap (and root to make the mount point): uid 1001, home at /home/crowdai, payload
#    bound read-only at /crowdai-payload, writable /tmp only. Else `unshare -n` (root), else no
#    isolation (said loudly);
# 6. checks: exit 0, the CSV valid for exactly the payload's mp3s (evaluate.py), the payload
#    byte-identical, and no network attempted: an audit hook installed in the venv logs every
#    inet connect and DNS lookup of every Python process (checked live first).
set -euo pipefail

reuse_site=""
if [[ ${1:-} == --reuse-site ]]; then reuse_site=$2; fi
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
work="$(mktemp -d /var/tmp/emulate.XXXXXX)"  # not under /tmp: the sandbox replaces /tmp
made_mount=""
cleanup() {
  chmod -R u+w "$work" 2>/dev/null || true
  rm -rf "$work"
  if [[ -n $made_mount ]]; then rmdir /crowdai-payload 2>/dev/null || true; fi
}
trap cleanup EXIT
fail() { echo "emulate.sh: FAILED: $*" >&2; exit 1; }

echo "== 1. staging the committed tree (git archive HEAD) at a fresh home"
home="$work/home/crowdai"
mkdir -p "$home"
git -C "$repo" archive HEAD | tar -x -C "$home"

echo "== 2. venv"
python3 -m venv "$work/venv"
site="$("$work/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
if [[ -n $reuse_site ]]; then
  echo "$reuse_site" > "$site/borrowed.pth"
  echo "   borrowing the packages of $reuse_site"
else
  "$work/venv/bin/python" -m pip install -q --disable-pip-version-check -r "$home/requirements.txt"
fi

"$work/venv/bin/python" "$home/tools/pin_requirements.py" --installed || fail "a distribution is not pinned"

echo "== 3. postBuild"
(cd "$home" && env -i HOME="$home" PATH="$work/venv/bin:/usr/bin:/bin" ./postBuild) || fail "postBuild"

out="$work/out"
mkdir -p "$out"
chmod 1777 "$out"
sandbox=none
if command -v bwrap >/dev/null && [[ $(id -u) == 0 ]]; then sandbox=bwrap
elif [[ $(id -u) == 0 ]] && unshare -n true 2>/dev/null; then sandbox=unshare
fi
if [[ $sandbox == bwrap ]]; then netlog=/tmp/network.log; else netlog="$out/network.log"; fi
# Installed after postBuild (which has the network in repo2docker): it watches the grader run only.
cat > "$site/sitecustomize.py" <<PY
# Emulation only: log every attempt to reach the network, from any Python process.
import socket, sys
def _log_network(event, args):
    inet = event == "socket.connect" and getattr(args[0], "family", None) in (socket.AF_INET, socket.AF_INET6)
    if inet or event in ("socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyname_ex"):
        with open("$netlog", "a") as log:
            log.write(f"{event} {args[1:]!r} from {sys.argv}\n")
sys.addaudithook(_log_network)
PY

echo "== 4. payload"
payload="$work/payload"
"$work/venv/bin/python" "$home/tests/container/make_payload.py" "$payload"
chmod -R a-w "$payload"
before="$(cd "$payload" && find . -type f -exec sha256sum {} + | sort)"

echo "== 5. run.sh, sandbox: $sandbox"
grader_env=(HOME=/home/crowdai TEST_DIRECTORY=/crowdai-payload OUTPUT_PATH=/tmp/output.csv
            PATH="$work/venv/bin:/usr/local/bin:/usr/bin:/bin")
case $sandbox in
  bwrap)
    if [[ ! -e /crowdai-payload ]]; then mkdir /crowdai-payload; made_mount=1; fi
    run=(bwrap --ro-bind / / --dev /dev --proc /proc --tmpfs /home --bind "$home" /home/crowdai
         --ro-bind "$payload" /crowdai-payload --bind "$out" /tmp --unshare-net --unshare-user
         --uid 1001 --gid 1001 --die-with-parent --chdir / --clearenv)
    # borrowed packages may live under /tmp, which the sandbox replaces: bind them back
    if [[ -n $reuse_site ]]; then run+=(--ro-bind "$reuse_site" "$reuse_site"); fi
    for pair in "${grader_env[@]}"; do run+=(--setenv "${pair%%=*}" "${pair#*=}"); done
    run+=(-- /home/crowdai/run.sh)
    csv="$out/output.csv" ;;
  *)
    grader_env=(HOME="$home" TEST_DIRECTORY="$payload" OUTPUT_PATH="$out/output.csv" "${grader_env[@]:3}")
    run=(env -i "${grader_env[@]}" "$home/run.sh")
    if [[ $sandbox == unshare ]]; then run=(unshare -n -- "${run[@]}")
    else echo "   WARNING: neither bubblewrap nor root: the network is NOT isolated"; fi
    csv="$out/output.csv" ;;
esac
# The audit hook must be live: a deliberate lookup, in the same sandbox, has to be logged.
probe=("${run[@]}")
probe[${#probe[@]}-1]="$work/venv/bin/python"
"${probe[@]}" -c 'import socket
try: socket.getaddrinfo("example.invalid", 80)
except OSError: pass' || true
[[ -s $out/network.log ]] || fail "the network audit hook logged nothing for a deliberate lookup"
: > "$out/network.log"

(cd / && "${run[@]}") || fail "run.sh exited with $?"

echo "== 6. checks"
"$work/venv/bin/python" "$home/evaluate.py" "$csv" --payload "$payload" || fail "the CSV is not valid for the payload"
after="$(cd "$payload" && find . -type f -exec sha256sum {} + | sort)"
[[ $before == "$after" ]] || fail "the payload folder changed"
if [[ -s $out/network.log ]]; then cat "$out/network.log" >&2; fail "the run tried to reach the network"; fi
echo "emulation passed: sandbox $sandbox, $(($(wc -l < "$csv") - 1)) rows, payload unchanged, no network attempted"
