#!/bin/sh
# The man page documents every subcommand and every option the CLI's --help
# lists, and lints clean.
cd "$(dirname "$0")/.." || exit 1
ACH=${ACHILLES_BIN:-./build/achilles}
. t/tap.sh
for cmd in $($ACH help | awk '/^Commands:/ {on=1; next} on && /^  [a-z]/ {print $1}' | grep -v '^help$'); do
    check "man page has a section for '$cmd'" "grep -q '^\.SS \"$cmd' man/achilles.1"
    for opt in $($ACH help $cmd | grep -o -- '--[a-z-]*' | sort -u); do
        esc=$(printf '%s' "$opt" | sed 's/-/\\\\-/g')
        check "man page documents $cmd $opt" "grep -q -- '$esc' man/achilles.1"
    done
done
for key in $($ACH train --help | awk '/^Keys/ {on=1; next} on {print $1}'); do
    check "man page documents run setting $key" "grep -q -- '^\.B.* $key\( \|\$\|,\)' man/achilles.1"
done
check "groff -ww finds no problem" "[ -z \"\$(groff -ww -man -Tutf8 man/achilles.1 2>&1 >/dev/null)\" ]"
if command -v mandoc >/dev/null; then
    check "mandoc -T lint is clean" "mandoc -T lint man/achilles.1 >/dev/null 2>&1"
fi
done_testing
