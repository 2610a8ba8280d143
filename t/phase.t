#!/usr/bin/perl
# `achilles phase` on the committed fixture (t/data/sweep-fixture: a 2 x 2
# grid, 2 seeds, numbers chosen by hand): the table, the CSV, the SVG, the
# best-epoch metric, unfinished runs; and data/paper_fig3.json against the
# tables of docs/science.md §5.
use strict;
use warnings;
use Test::More;
use File::Temp qw(tempdir);
use List::Util qw(sum min max);
use JSON::PP;

my $ach = $ENV{ACHILLES_BIN} // './build/achilles';
my $fix = 't/data/sweep-fixture';
my $dir = tempdir(CLEANUP => 1);

sub slurp { local $/; open my $f, '<:raw', $_[0] or return undef; my $d = <$f>; close $f; $d }
sub run {
    my $cmd = join(' ', map { "'$_'" } @_) . " >$dir/out 2>$dir/err";
    system($cmd);
    return ($? >> 8, slurp("$dir/out") // '', slurp("$dir/err") // '');
}

# The fixture's runs: [layers, gamma, [comp, sym] final of seed 0, of seed 1].
# Epoch 1 of each run holds comp + 0.10 (0.95 where the final is 1.00) and
# sym + 0.05; epoch 0 is 0.
my %final = ('2 0.5' => [[0.20, 0.04], [0.30, 0.08]], '2 1' => [[0.60, 0.40], [0.64, 0.36]],
             '3 0.5' => [[0.06, 0.10], [0.08, 0.12]], '3 1' => [[0.90, 0.02], [1.00, 0.00]]);
my %paper = ('2 0.5' => ['0.25', '0.04-0.13'], '2 1' => ['0.61', '0.38'], '3 0.5' => ['0.07', '0.04-0.13'],
             '3 1' => ['0.94', '0.04-0.13']);
sub stats {    # mean, min, max, sample std
    my @v = @_;
    my $m = sum(@v) / @v;
    my $sd = @v > 1 ? sqrt(sum(map { ($_ - $m)**2 } @v) / (@v - 1)) : 0;
    return ($m, min(@v), max(@v), $sd);
}
sub expected {
    my ($best) = @_;
    my %e;
    for my $cell (keys %final) {
        for my $w (0, 1) {
            my @v = map {
                my $f = $_->[$w];
                $best ? max($f, $w ? $f + 0.05 : ($f < 1 ? $f + 0.10 : 0.95)) : $f
            } @{ $final{$cell} };
            $e{$cell}[$w] = [stats(@v)];
        }
    }
    return \%e;
}
# rows of the text table: "layers gamma runs | comp (min-max) std paper | sym (min-max) std paper"
sub table {
    my %t;
    for (split /\n/, $_[0]) {
        next unless /^\s*(\d+)\s+(\S+)\s+(\d+) \|\s+(\S+)\s+\((\S+)-(\S+)\)\s+(\S+)\s+(\S+)\s+\|\s+(\S+)\s+\((\S+)-(\S+)\)\s+(\S+)\s+(\S+)$/;
        $t{"$1 $2"} = { runs => $3, c => [$4, $5, $6, $7], pc => $8, s => [$9, $10, $11, $12], ps => $13 };
    }
    return \%t;
}
sub check_table {
    my ($text, $best, $what) = @_;
    my $t = table($text);
    my $e = expected($best);
    is(scalar keys %$t, 4, "$what: four cells");
    for my $cell (sort keys %final) {
        my $row = $t->{$cell} or do { fail("$what: cell $cell missing"); next };
        is($row->{runs}, 2, "$what: $cell has 2 runs");
        is_deeply($row->{c}, [map { sprintf '%.3f', $_ } @{ $e->{$cell}[0] }], "$what: $cell composite mean, min, max, std");
        is_deeply($row->{s}, [map { sprintf '%.3f', $_ } @{ $e->{$cell}[1] }], "$what: $cell symmetric mean, min, max, std");
        is_deeply([$row->{pc}, $row->{ps}], $paper{$cell}, "$what: $cell the paper's numbers beside ours");
    }
}

my ($st, $out, $err) = run($ach, 'phase', $fix, '--csv', "$dir/p.csv", '--svg', "$dir/p.svg");
is($st, 0, 'phase on the fixture') or diag $err;
check_table($out, 0, 'final');
like($out, qr/composite answer\nours\s+paper \(Fig\. 3\)/, 'composite heatmap: ours beside the paper');
like($out, qr/symmetric answer\nours\s+paper \(Fig\. 3\): outside the exceptions a range/, 'symmetric heatmap, the range said');
like($out, qr/^L3 .*L3 /m, 'heatmap rows side by side');
unlike($out, qr/not finished/, 'no unfinished runs');

# the CSV: one row per cell, full precision
my @csv = split /\n/, slurp("$dir/p.csv") // '';
is($csv[0], 'group,n_layer,gamma,runs,comp_mean,comp_min,comp_max,comp_std,sym_mean,sym_min,sym_max,sym_std,'
          . 'paper_comp,paper_sym_lo,paper_sym_hi', 'CSV header');
is(scalar @csv, 5, 'CSV: header and 4 cells');
my $e = expected(0);
for my $line (@csv[1 .. $#csv]) {
    my @f = split /,/, $line;
    my $cell = "$f[1] $f[2]";
    my @want = (@{ $e->{$cell}[0] }, @{ $e->{$cell}[1] });
    my $good = $f[3] == 2;
    $good &&= abs($f[4 + $_] - $want[$_]) < 1e-6 for 0 .. 7;
    ok($good, "CSV $cell: runs and statistics") or diag "$line\nwant @want";
}
like(slurp("$dir/p.csv"), qr/^"",2,1,2,.*,0\.61,0\.38,0\.38$/m, 'CSV: the paper, exact symmetric cell (lo = hi)');
like(slurp("$dir/p.csv"), qr/^"",3,0\.5,2,.*,0\.07,0\.04,0\.13$/m, 'CSV: the paper, a symmetric range');

# the SVG: valid XML with both panels, our numbers and the paper's
my $svg = slurp("$dir/p.svg") // '';
like($svg, qr/^<\?xml version="1\.0"/, 'SVG: an XML document');
like($svg, qr/<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/, 'SVG: the SVG namespace');
like($svg, qr/>composite answer</, 'SVG: composite panel');
like($svg, qr/>symmetric answer</, 'SVG: symmetric panel');
like($svg, qr/>0\.62</, 'SVG: our mean in the cell (L2, gamma 1: 0.62)');
like($svg, qr/>0\.60-0\.64 \(2\)</, 'SVG: its spread and runs');
like($svg, qr/>paper 0\.61</, "SVG: the paper's value in the cell");
like($svg, qr/>gamma \(initialisation rate\)</, 'SVG: x axis label');
like($svg, qr/>layers</, 'SVG: y axis label');
like($svg, qr/linearGradient/, 'SVG: a colour bar');
SKIP: {
    skip 'xmllint not installed (Debian: libxml2-utils)', 1 unless system('sh', '-c', 'command -v xmllint >/dev/null') == 0;
    is(system('xmllint', '--noout', "$dir/p.svg"), 0, 'SVG: xmllint --noout finds it well-formed');
}

($st, $out, $err) = run($ach, 'phase', $fix, '--metric', 'best', '--ascii');
is($st, 0, '--metric best');
like($out, qr/at the best epoch/, '--metric best: says so');
check_table($out, 1, 'best');
unlike($out, qr/[\x{80}-\x{ff}]/, '--ascii: no UTF-8 shades');

# an unfinished run is left out, and said to be
system('cp', '-r', $fix, "$dir/fx");
my $s0 = "$dir/fx/runs/0000-L2-g0.5-s0/summary.json";
my $sj = slurp($s0);
$sj =~ s/"status":\s*"done"/"status": "running"/ or die;
open my $f, '>', $s0 or die; print $f $sj; close $f;
($st, $out, $err) = run($ach, 'phase', "$dir/fx");
like($out, qr/1 run has not finished yet, left out/, 'an unfinished run is left out');
like($out, qr/^\s+2\s+0\.5\s+1 \|\s+0\.300\s+\(0\.300-0\.300\)\s+0\.000/m, 'its cell holds the other seed only');

# errors
($st, $out, $err) = run($ach, 'phase', $fix, '--metric', 'worst');
is($st, 2, '--metric worst: bad usage');
like($err, qr/final or best/, 'and says the choices');
($st, $out, $err) = run($ach, 'phase', "$dir/none");
is($st, 1, 'a missing directory: exit 1');
like($err, qr/none/, 'and names it');
open $f, '>', "$dir/paper.json" or die;
print $f '{"layers": [2], "gamma": [1], "composite": {"values": [[0.5]]}, "symmetric": {"range": [0.2, 0.1]}}';
close $f;
($st, $out, $err) = run($ach, 'phase', $fix, '--paper', "$dir/paper.json");
is($st, 1, 'a bad reference figure: exit 1');
like($err, qr/paper\.json: field 'symmetric\.range'/, 'and names the file and the field');

# --- data/paper_fig3.json is docs/science.md §5, cell for cell -------------------
{
    open my $f, '<:encoding(UTF-8)', 'docs/science.md' or die "docs/science.md: $!";
    my $text = do { local $/; <$f> };
    close $f;
    my ($sec) = $text =~ /^## 5\. (.*?)^## 6\. /ms;
    ok(defined $sec, 'docs/science.md has its section 5') or $sec = '';
    my $fig = JSON::PP::decode_json(slurp('data/paper_fig3.json'));
    my ($head) = $sec =~ /^\| layers \\ \x{3b3} \| (.*) \|$/m;
    my @gam = map { $_ + 0 } split / \| /, $head // '';
    is_deeply([map { $_ + 0 } @{ $fig->{gamma} }], \@gam, 'gamma columns as in docs/science.md §5');
    my (@layers, @rows);
    while ($sec =~ /^\| (\d) \| ((?:\d\.\d\d \| ){11}\d\.\d\d) \|$/mg) {
        push @layers, $1;
        push @rows, [map { $_ + 0 } split / \| /, $2];
    }
    is_deeply($fig->{layers}, \@layers, 'layer rows as in docs/science.md §5');
    is_deeply($fig->{composite}{values}, \@rows, 'every composite cell as in docs/science.md §5');
    my ($lo, $hi) = $sec =~ /every cell\s+lies between ([\d.]+) and ([\d.]+) except/;
    my @ex;
    push @ex, { n_layer => $1 + 0, gamma => $2 + 0, value => $3 + 0 }
        while $sec =~ /^\| (\d) \| (\d\.\d) \| (\d\.\d\d) \|$/mg;
    my @got = map { { n_layer => $_->{n_layer}, gamma => $_->{gamma} + 0, value => $_->{value} + 0 } }
        @{ $fig->{symmetric}{exceptions} };
    is(scalar @ex, 5, 'five symmetric exceptions in docs/science.md §5');
    is_deeply([[($lo // 0) + 0, ($hi // 0) + 0], \@ex], [[map { $_ + 0 } @{ $fig->{symmetric}{range} }], \@got],
              'the symmetric range and its five exceptions as in docs/science.md §5');
}

done_testing();
