#!/bin/sh
# Every REPL command in achilles-tui's command table has an entry under
# "REPL COMMANDS" in the man page, and every entry there is a command; the
# workbench's keys, options, files and environment are documented too.
cd "$(dirname "$0")/.." || exit 1
TUI=${ACHILLES_TUI_BIN:-./build/achilles-tui}
MAN=man/achilles.1
. t/tap.sh
table=$($TUI --list-commands | cut -f1 | sort)
# entries: the first word after .B / .BI right after a .TP in that section
documented=$(awk '/^\.SH "REPL COMMANDS"/ {on=1; next} /^\.SH/ {on=0}
    on && tp && /^\.BI? / {w=$2; gsub(/"/, "", w); print w} {tp = ($0 == ".TP")}' $MAN | sort)
check "the command table is not empty" "[ -n \"$table\" ]"
for c in $table; do
    check "man page documents REPL command '$c'" "echo \"\$documented\" | grep -qx -- '$c'"
done
for c in $documented; do
    check "REPL command '$c' in the man page exists" "echo \"\$table\" | grep -qx -- '$c'"
done
check "same number of commands in both" "[ $(echo "$table" | wc -l) -eq $(echo "$documented" | wc -l) ]"
check "SYNOPSIS names achilles-tui" "sed -n '/^\.SH SYNOPSIS/,/^\.SH/p' $MAN | grep -q 'achilles\\\\-tui'"
for opt in $($TUI -h | grep -o -- '^  -[A-Za-z]' | tr -d ' '); do
    esc=$(printf '%s' "$opt" | sed 's/-/\\\\-/g')
    check "man page documents achilles-tui $opt" "sed -n '/^\.SS Options/,/^\.S[HS]/p' $MAN | grep -q -- '^\.B $esc'"
done
for key in F1 F2 F3 F5 F10 PgUp TAB; do
    check "man page documents the $key key" "sed -n '/^\.SS Keys/,/^\.SS Sessions/p' $MAN | grep -q '$key'"
done
for f in 'sessions/NAME/' 'achilles/history'; do
    check "FILES has $f" "sed -n '/^\.SH FILES/,/^\.SH/p' $MAN | grep -q '$f'"
done
for v in ACHILLES_DATA ACHILLES_THREADS NO_COLOR XDG_STATE_HOME LANG; do
    check "ENVIRONMENT has $v" "sed -n '/^\.SH ENVIRONMENT/,/^\.SH/p' $MAN | grep -q '$v'"
done
check "EXAMPLES open the workbench" "sed -n '/^\.SH EXAMPLES/,/^\.SH/p' $MAN | grep -q '^achilles\\\\-tui'"
done_testing
