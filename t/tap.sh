# TAP for the shell tests (sourced from the repository's top directory):
# check "what" "shell condition" prints ok/not ok; done_testing prints the
# plan and exits non-zero if any check failed.
n=0
fail=0
check() {
    n=$((n + 1))
    if eval "$2"; then echo "ok $n - $1"; else echo "not ok $n - $1"; fail=1; fi
}
done_testing() {
    echo "1..$n"
    exit $fail
}
