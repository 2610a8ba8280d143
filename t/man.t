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
# The live keys, as the key table marks them, are the ones the man page says
# `set` changes and the ones it calls live under RUN SETTINGS.
live=$($ACH train --help | awk '/^Keys/ {on=1; next} on && / \(live\) \[/ {print $1}' | sort | tr '\n' ' ')
set_keys=$(sed -n '/^\.BI "set /,/^\.TP/p' man/achilles.1 | sed -n 's/^\.BR\{0,1\} \([a-z_]*\) *[,.]\{0,1\}$/\1/p' |
    sort | tr '\n' ' ')
settings_keys=$(sed -n '/^The live ones,/,/^(marked/p' man/achilles.1 | sed -n 's/^\.BR\{0,1\} \([a-z_]*\) *[,.]\{0,1\}$/\1/p' |
    sort | tr '\n' ' ')
check "train --help marks live keys" "[ -n '$live' ]"
check "man page: set changes the live keys ($live)" "[ '$set_keys' = '$live' ]"
check "man page: RUN SETTINGS names the live keys" "[ '$settings_keys' = '$live' ]"
# Every device man renders on warns of nothing: PostScript (groff's default),
# UTF-8, and ASCII and Latin-1 (LANG=C) with man's -mtty-char, which names
# the glyphs those lack; a glyph no device has would print as nothing.
if command -v groff >/dev/null; then
    for dev in ps utf8 'ascii -mtty-char' 'latin1 -mtty-char'; do
        if groff -z -T$dev </dev/null 2>/dev/null; then
            check "groff -ww -T$dev finds no problem" "[ -z \"\$(groff -ww -man -z -T$dev man/achilles.1 2>&1)\" ]"
        else
            skip "groff -ww -T$dev finds no problem" "groff has no device ${dev%% *}"
        fi
    done
else
    skip "groff -ww finds no problem" "groff is not installed"
fi
check "man page is ASCII (groff escapes for the rest)" "! LC_ALL=C grep -q \"\$(printf '[\\200-\\377]')\" man/achilles.1"
if command -v mandoc >/dev/null; then
    check "mandoc -T lint is clean" "mandoc -T lint man/achilles.1 >/dev/null 2>&1"
else
    skip "mandoc -T lint is clean" "mandoc is not installed"
fi
done_testing
