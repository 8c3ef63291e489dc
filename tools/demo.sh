#!/usr/bin/env bash
# `make demo`: the whole job, end to end, on temporary homes, printing each
# step. Uses only the built CLI (bin/microsnap), the OCI fixture generator and
# mkfs.ext4 (e2fsprogs).
set -euo pipefail
cd "$(dirname "$0")/.."
MS=${MS:-$PWD/bin/microsnap}
work=$(mktemp -d /tmp/microsnap-demo-XXXXXX)
trap 'rm -rf "$work"' EXIT
export MICROSNAP_HOME=$work/home-a
home_b=$work/home-b
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

step "1. Build a small OCI image into the home's image layout"
mkdir -p "$work/rootfs/etc" "$work/rootfs/bin"
printf 'NAME="demo linux"\nVERSION_ID=1\n' > "$work/rootfs/etc/os-release"
printf '#!/bin/sh\necho hello from the demo image\n' > "$work/rootfs/bin/hello"
run python3 tests/fixtures/make_oci_image.py "$work/layout" demo:1 --rootfs "$work/rootfs" >/dev/null
run "$MS" image import "$work/layout"
run "$MS" image ls

step "2. Create sandbox 'baseline' from the image (a sparse 1 GiB upper)"
run "$MS" sandbox create baseline --image demo:1 --size 1G
run "$MS" sandbox stop baseline

step "3. Write real files into its ext4 upper (mkfs.ext4 -d from a directory tree)"
tree=$work/tree
mkdir -p "$tree/app" "$tree/data"
cp -r /usr/share/doc/e2fsprogs* /usr/share/doc/zstd* "$tree/app/" 2>/dev/null || true
python3 -c "import sysconfig,shutil; shutil.copytree(sysconfig.get_paths()['stdlib']+'/json', '$tree/app/json')"
head -c 8388608 /dev/urandom > "$tree/data/blob.bin"
upper=$("$MS" --json sandbox ls | python3 -c 'import json,sys; print([s["upper_path"] for s in json.load(sys.stdin) if s["name"]=="baseline"][0])')
run mkfs.ext4 -q -F -d "$tree" "$upper"
printf 'upper %s: logical %s, allocated %s\n' "$upper" "$(du -h --apparent-size "$upper" | cut -f1)" "$(du -h "$upper" | cut -f1)"

step "4. Snapshot it with integrity, then verify"
run "$MS" snapshot create after-setup --from baseline --label stage=post-deps --integrity
run "$MS" snapshot verify after-setup

step "5. Export to .tar.zst"
run "$MS" snapshot export after-setup "$work/after-setup.tar.zst" --with-image
ls -l "$work/after-setup.tar.zst"

step "6. Import into a second home"
run "$MS" --home "$home_b" snapshot import "$work/after-setup.tar.zst"
run "$MS" --home "$home_b" image ls

step "7. Boot a fork from the imported snapshot and snapshot the fork"
head=$("$MS" --home "$home_b" --json snapshot ls | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["name"])')
run "$MS" --home "$home_b" sandbox create fork --snapshot "$head"
run "$MS" --home "$home_b" sandbox stop fork
run "$MS" --home "$home_b" snapshot create fork-1 --from fork --integrity
run "$MS" --home "$home_b" snapshot inspect fork-1

step "8. Both homes, with the parent link and sparse sizes"
run "$MS" snapshot ls
run "$MS" --home "$home_b" snapshot ls
for d in "$MICROSNAP_HOME"/snapshots/* "$home_b"/snapshots/*; do
  f=$d/upper.ext4
  printf '%-60s logical %6s  allocated %6s\n' "$f" "$(du -h --apparent-size "$f" | cut -f1)" "$(du -h "$f" | cut -f1)"
done
step "demo finished"
