# TAP for the shell tests (sourced from the repository's top directory):
# check "what" "shell condition" prints ok/not ok; done_testing prints the
# plan and exits non-zero if any check failed.
n=0
fail=0
check() {
    n=$((n + 1))
    if eval "$2"; then echo "ok $n - $1"; else echo "not ok $n - $1"; fail=1; fi
}
# skip "what" "why": a check that cannot run here passes as a TAP skip
skip() {
    n=$((n + 1))
    echo "ok $n - $1 # SKIP $2"
}
done_testing() {
    echo "1..$n"
    exit $fail
}
