#!/bin/sh
# check-packages-lock NAME LOCK: run by every Dockerfile right after its 'packages' stage. Fails the build, with
# one line naming the first difference, unless the Debian packages installed are exactly those of LOCK
# (containers/NAME/packages.lock: one name=version a line, '#' comments), so the content-hash tag pins the
# binaries too. 'batchpipes images lock NAME' rewrites the lock.
set -eu
name=$1
lock=$2
installed=$(mktemp)
dpkg-query -W -f '${db:Status-Abbrev} ${Package}=${Version}\n' | awk '$1 == "ii" { print $2 }' > "$installed"
first=$(awk -F= 'FNR == NR { if ($0 !~ /^#/ && NF) lock[$1] = substr($0, length($1) + 2); next }
    { v = substr($0, length($1) + 2) }
    !($1 in lock) { print $1 "\t" $0 " is installed but not locked"; next }
    lock[$1] != v { print $1 "\t" $1 " is locked at " lock[$1] " but " v " is installed" }
    { delete lock[$1] }
    END { for (p in lock) print p "\t" p "=" lock[p] " is locked but not installed" }' \
    "$lock" "$installed" | LC_ALL=C sort | head -n 1 | cut -f 2)
rm -f "$installed"
if [ -n "$first" ]; then
    echo "ERROR: containers/$name/packages.lock does not match the packages installed: $first;" \
        "run 'batchpipes images lock $name' and review the change" >&2
    exit 1
fi
