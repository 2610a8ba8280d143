#!/usr/bin/perl
# Every fuzz target's committed seed corpus (fuzz/corpus/NAME) replayed
# through the target built with the normal compiler (build/fuzz-replay/NAME,
# fuzz/replay.c instead of libFuzzer): each input runs to the end, so CI
# exercises every parser on them without clang. Under `make check
# SANITIZE=1` this runs them under ASan and UBSan too.
use strict;
use warnings;
use Test::More;
use FindBin;

chdir "$FindBin::Bin/.." or die;
my @targets = map { m{^fuzz/(\w+)\.c$} ? $1 : () } glob 'fuzz/*.c';
@targets = grep { $_ ne 'replay' } @targets;
ok(@targets >= 7, 'fuzz targets found: ' . join(' ', @targets));
for my $t (@targets) {
    my @files = grep { -f } glob "fuzz/corpus/$t/*";
    ok(@files > 0, "$t: the corpus is not empty");
    my $out = `build/fuzz-replay/$t @files 2>&1`;
    is($?, 0, "$t: every corpus input runs cleanly") or diag $out;
    like($out, qr/^${\ scalar @files} inputs ran$/m, "$t: all " . @files . ' inputs ran');
}
done_testing();
