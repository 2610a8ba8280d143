#!/usr/bin/perl
# src/'s layers (README, Layout): a folder's files include only headers of
# their own folder or of the folders before it in the Makefile's SRC_DIRS,
# and the generic model knows no family: model.c and model.h name no
# architecture and include no family's header.
use strict;
use warnings;
use Test::More;

my ($dirs) = `make -s -p -n -f Makefile 2>/dev/null` =~ /^SRC_DIRS := (.*)$/m;
my @layers = split ' ', $dirs // '';
ok(@layers >= 8, 'the Makefile lists the layers') or diag "SRC_DIRS: $dirs";
my (%layer_of, %files);
for my $i (0 .. $#layers) {
    for my $f (glob("$layers[$i]/*.[ch]")) {
        (my $base = $f) =~ s{.*/}{};
        $layer_of{$base} = $i;
        $files{$f} = $i;
    }
}
my @bad;
for my $f (sort keys %files) {
    open my $fh, '<', $f or die "$f: $!";
    while (<$fh>) {
        next unless /^#include "([^"]+)"/;
        my $h = $1;
        next unless exists $layer_of{$h};    # a sibling .c included as a part (kernels_fast.c's)
        push @bad, "$f includes $h ($layers[$layer_of{$h}])" if $layer_of{$h} > $files{$f};
    }
}
is(join("\n", @bad), '', 'no file includes a header of a later layer');

for my $f (qw(src/model/model.c src/model/model.h)) {
    open my $fh, '<', $f or die "$f: $!";
    my @arch = grep { /\bARCH_MAMBA|\bmamba[12]?_/ } <$fh>;
    is(join('', @arch), '', "$f has no architecture branch or family call");
}
open my $mh, '<', 'src/model/model.h' or die;
my @inc = grep { /^#include "(family|mamba|stem|head)\.h"/ } <$mh>;
is(join('', @inc), '', "model.h includes no family's header (no include cycle)");
done_testing();
