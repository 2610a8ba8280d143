#!/usr/bin/perl
# Bad task presets given to `achilles data`: each gets exit status 1 and a
# message naming the file, the field and the problem. Bad usage exits 2.
# Also: bare names are found through ACHILLES_DATA, and the output reads.
use strict;
use warnings;
use Test::More;
use JSON::PP;
use File::Temp qw(tempdir);
use FindBin;

chdir "$FindBin::Bin/.." or die;
my $ach = './build/achilles';
my $dir = tempdir(CLEANUP => 1);
my $json = JSON::PP->new->canonical;

sub slurp { local $/; open my $f, '<:raw', $_[0] or die "$_[0]: $!"; my $d = <$f>; close $f; $d }
sub spew { open my $f, '>:raw', $_[0] or die "$_[0]: $!"; print $f $_[1]; close $f }

# run achilles; returns (exit status, stdout, stderr)
sub run {
    my $cmd = join(' ', map { "'$_'" } @_) . " 2>$dir/err >$dir/out";
    system($cmd);
    my $st = $? == -1 ? -1 : ($? & 127 ? 128 + ($? & 127) : $? >> 8);
    return ($st, slurp("$dir/out"), slurp("$dir/err"));
}

my $good = slurp('data/composite.json');

# name => [mutator of the decoded preset (or a string: the file's raw text), expected message]
my @cases = (
    ['unknown key', sub { $_[0]{seq_length} = 8 }, qr/unknown field 'seq_length'/],
    ['unknown nested key', sub { $_[0]{anchors}[1]{shfit} = 1 }, qr/unknown field 'anchors\[1\]\.shfit'/],
    ['unknown split', sub { $_[0]{splits}{valid} = $_[0]{splits}{test} }, qr/unknown field 'splits\.valid'/],
    ['shift as a string', sub { $_[0]{anchors}[2]{shift} = '-2' }, qr/field 'anchors\[2\]\.shift': expected an integer/],
    ['fractional length', sub { $_[0]{seq_len} = 8.5 }, qr/field 'seq_len': expected an integer/],
    ['range not an object', sub { $_[0]{key_tokens} = [20, 100] }, qr/field 'key_tokens': expected an object/],
    ['missing field', sub { delete $_[0]{vocab_size} }, qr/field 'vocab_size': missing/],
    ['sequence too short', sub { $_[0]{seq_len} = 2 }, qr/field 'seq_len': 2 is out of range/],
    ['negative count', sub { $_[0]{splits}{train}{per_pair} = -1 }, qr/field 'splits\.train\.per_pair': -1 is out of range/],
    ['label beyond the vocabulary', sub { $_[0]{vocab_size} = 105 },
        qr/field 'vocab_size': label 109 \(pair 11: key 99 \+10\) does not fit in the vocabulary of 105/],
    ['negative label', sub { $_[0]{anchors}[0]{shift} = -30 }, qr/field 'vocab_size': label -\d+ .*negative/],
    ['modulus beyond the vocabulary', sub { $_[0]{label_modulus} = 300 }, qr/field 'label_modulus': 300 is out of range/],
    ['token beyond the vocabulary', sub { $_[0]{key_tokens}{below} = 250 }, qr/field 'key_tokens\.below': 250 is beyond vocab_size/],
    ['empty key range', sub { $_[0]{key_tokens} = { from => 50, below => 50 } }, qr/field 'key_tokens\.below': the range \[50, 50\) is empty/],
    ['anchors do not fit', sub { $_[0]{key_positions}{below} = 7 }, qr/field 'key_positions\.below': 7 is beyond seq_len - 2/],
    ['anchor inside the noise', sub { $_[0]{anchors}[0]{token} = 20 }, qr/field 'anchors\[0\]\.token': anchor 20 lies inside/],
    ['anchor declared twice', sub { $_[0]{anchors}[1]{token} = 1 }, qr/field 'anchors\[1\]\.token': anchor 1 is declared twice/],
    ['undeclared anchor in a pair', sub { $_[0]{special_pairs}[0]{pair} = [3, 5] },
        qr/field 'special_pairs\[0\]\.pair\[1\]': 5 is not one of the declared anchors/],
    ['held-out pair in train', sub { $_[0]{splits}{train}{pairs} = 'all' },
        qr/field 'splits\.train\.pairs': pair 43 is held out/],
    ['held-out pair with its own shift', sub { push @{ $_[0]{special_pairs} }, { pair => [4, 3], shift => 1 } },
        qr/field 'held_out\[0\]\.pair': pair 43 is held out, so it cannot have a special shift/],
    ['wrong stated answer', sub { $_[0]{held_out}[0]{composite_shift} = -9 },
        qr/field 'held_out\[0\]\.composite_shift': -9, but the anchors' shifts add up to -10/],
    ['impossible key rule', sub { $_[0]{key_rule}{modulus} = 1 },
        qr/field 'splits\.train\.key_vs_position': no key in \[20, 100\) has key mod 1 !=/],
    ['unknown key rule', sub { $_[0]{splits}{test}{key_vs_position} = 'same' },
        qr/field 'splits\.test\.key_vs_position': 'same' is not one of 'any', 'differs', 'equals'/],
    ['pair listed twice', sub { $_[0]{splits}{test}{pairs} = [[4, 3], [4, 3]] }, qr/field 'splits\.test\.pairs\[1\]': pair 43 is listed twice/],
    ['unknown task kind', sub { $_[0]{kind} = 'nonsense' }, qr/field 'kind': 'nonsense' is not a task kind \('composite', 'dense_ar'\)/],
    ['malformed JSON', "{\n  \"name\": \"x\",\n  \"seq_len\": 8,,\n}\n", qr/malformed JSON at line 3/],
    ['not an object', '[1, 2]', qr/expected a JSON object/],
    ['repeated key', '{"name": "a", "name": "b"}', qr/field 'name' appears twice/],
);

# The same for a dense_ar preset (src/task/dense_ar.c).
my $good_dense = slurp('data/dense-ar-small.json');
my @dense_cases = (
    ['dense: no dimensions', sub { $_[0]{dim} = 0 }, qr/field 'dim': 0 is out of range \[1, 1024\]/],
    ['dense: empty sequence', sub { $_[0]{seq_len} = 0 }, qr/field 'seq_len': 0 is out of range/],
    ['dense: no matrices', sub { $_[0]{matrices} = 0 }, qr/field 'matrices': 0 is out of range \[1, 64\]/],
    ['dense: negative sigma', sub { $_[0]{sigma} = -0.05 }, qr/field 'sigma': -0.05 is out of range/],
    ['dense: no noise', sub { $_[0]{sigma} = 0 }, qr/field 'sigma': 0 is out of range \[1e-06, /],
    ['dense: sigma as a string', sub { $_[0]{sigma} = '0.05' }, qr/field 'sigma': expected a number/],
    ['dense: gain not a number', sub { $_[0]{gain} = JSON::PP::true }, qr/field 'gain': expected a number/],
    ['dense: chunks not dividing L', sub { $_[0]{chunks} = 5 }, qr/field 'chunks': 5 does not divide seq_len 32/],
    ['dense: more chunks than positions', sub { $_[0]{chunks} = 64 }, qr/field 'chunks': 64 does not divide seq_len 32/],
    ['dense: unknown field', sub { $_[0]{D} = 64 }, qr/unknown field 'D'/],
    ['dense: unknown split', sub { $_[0]{splits}{valid} = $_[0]{splits}{val} }, qr/unknown field 'splits\.valid'/],
    ['dense: missing split', sub { delete $_[0]{splits}{test} }, qr/field 'splits\.test': missing/],
    ['dense: unknown sign', sub { $_[0]{splits}{val}{x0_sign} = 'neg' },
        qr/field 'splits\.val\.x0_sign': 'neg' is not one of 'positive', 'negative'/],
    ['dense: negative size', sub { $_[0]{splits}{train}{size} = -1 }, qr/field 'splits\.train\.size': -1 is out of range/],
    ['dense: fractional seed', sub { $_[0]{seed} = 1.5 }, qr/field 'seed': expected an integer/],
    ['dense: matrices too costly', sub { $_[0]{dim} = 1024 }, qr/field 'matrices': 8 matrices of dim 1024 .* over the limit/],
    ['dense: sequences too costly', sub { $_[0]{dim} = 200; $_[0]{matrices} = 33; $_[0]{seq_len} = 1024 },
        qr/field 'seq_len': 1024 steps with 33 matrices of dim 200 .* over the limit/],
);

for my $c ((map { [$good, @$_] } @cases), (map { [$good_dense, @$_] } @dense_cases)) {
    my ($base, $name, $mut, $re) = @$c;
    my $path = "$dir/bad-" . ($name =~ s/\W+/-/gr) . '.json';
    if (ref $mut) {
        my $h = $json->decode($base);
        $mut->($h);
        spew($path, $json->encode($h));
    } else {
        spew($path, $mut);
    }
    my ($s, $o, $e) = run($ach, 'data', '--preset', $path);
    is($s, 1, "$name: exit status 1");
    like($e, qr/^achilles: data: \Q$path\E: /, "$name: message names the file");
    like($e, $re, "$name: message names the field and the problem") or diag $e;
}

my ($st, $out, $err) = run($ach, 'data', '--preset', "$dir/nonexistent.json");
is($st, 1, 'missing file: exit 1');
like($err, qr/\Q$dir\E\/nonexistent.json: No such file/, 'missing file: named');
($st, $out, $err) = run($ach, 'data', '--preset', 'no-such-preset');
is($st, 1, 'unknown preset name: exit 1');
like($err, qr/no-such-preset.json: no preset 'no-such-preset' in /, 'unknown preset name: says where it looked');

# ACHILLES_DATA overrides where bare names are found.
my $h = $json->decode($good);
$h->{name} = 'mine';
spew("$dir/mine.json", $json->encode($h));
{
    local $ENV{ACHILLES_DATA} = $dir;
    ($st, $out, $err) = run($ach, 'data', '--preset', 'mine', '--show', '1');
}
is($st, 0, 'ACHILLES_DATA: a bare name is found there') or diag $err;
like($out, qr/^preset mine \(\Q$dir\E\/mine.json\)/, 'ACHILLES_DATA: the preset came from there');

# Optional fields may be left out or null; both_orders on a diagonal pair is one pair.
$h = $json->decode($good);
delete $h->{label_modulus};
$h->{held_out} = undef;
$h->{splits}{train}{pairs} = 'all';
$h->{special_pairs} = [{ pair => [2, 2], shift => 3, both_orders => JSON::PP::true }];
spew("$dir/optional.json", $json->encode($h));
($st, $out, $err) = run($ach, 'data', '--preset', "$dir/optional.json", '--counts', '--show', '0');
is($st, 0, 'optional fields left out load') or diag $err;
like($out, qr/^22 +16800  key \+ 3 \(special; composite key \+ 2\)$/m, 'a diagonal both_orders pair gets its shift');
like($out, qr/^43 +16800  key - 10$/m, 'with nothing held out, 43 is trained compositionally');

# The output: one sequence per pair by default, key and anchors marked, both answers for 43.
($st, $out, $err) = run($ach, 'data', '--split', 'test', '--counts');
is($st, 0, 'data --split test --counts succeeds') or diag $err;
my @seqs = $out =~ /^ +\d+  \d\d .*\[\d+\] <\d> <\d>.*$/mg;
is(scalar @seqs, 16, 'one sequence per pair, key in [brackets], anchors in <angles>');
like($out, qr/^ +\d+  43 .* \(composite \d+, symmetric \d+\)$/m, 'pair 43 shows both answers');
like($out, qr/^43 +1800  key - 10 \(held out: composite key - 10, symmetric key - 6\)$/m, 'counts: pair 43 held out');
like($out, qr/^34 +1800  key - 6 \(special; composite key - 10\)$/m, 'counts: pair 34 special');
like($out, qr/^total +28800$/m, 'counts: total');
($st, $out) = run($ach, 'data', '--seed', '7', '--show', '3');
my ($st2, $out2) = run($ach, 'data', '--seed', '7', '--show', '3');
is($out, $out2, 'the same seed prints the same sequences');

# A dense_ar preset is described: its process, its splits, some vectors.
($st, $out, $err) = run($ach, 'data', '--preset', 'dense-ar-small', '--split', 'val', '--show', '2');
is($st, 0, 'data on dense-ar-small') or diag $err;
like($out, qr/^kind dense_ar: 32 unit vectors of dimension 64; 8 matrices, sigma 0\.05, gain 1, alpha 0; block shuffle in 4 chunks of 8; data seed 0$/m,
     'dense_ar: the process in one line');
like($out, qr/^split train +50000 sequences, x_0\[0\] > 0\nsplit val +2000 sequences, x_0\[0\] < 0  \(shown\)\nsplit test +2000 sequences, x_0\[0\] < 0$/m,
     'dense_ar: the three splits, their sizes and sign rules');
my @x0 = $out =~ /^ +\d+  x_0 +(-\d\.\d{4}) /mg;
is(scalar @x0, 2, 'dense_ar: --show 2 prints two sequences, x_0 first coordinate negative in val');
($st, $out, $err) = run($ach, 'data', '--preset', 'dense-ar-small', '--split', 'valid');
is($st, 2, 'dense_ar: an unknown split is a usage error');
like($err, qr/has the splits train, val, test/, '... listing the kind\'s splits');

# A dense_ar preset loads, but no model family takes vectors yet: training says so.
($st, $out, $err) = run($ach, 'train', 'preset=dense-ar-small', '--out', "$dir/dense-run");
is($st, 1, 'train on dense_ar: exit 1');
like($err, qr/dense-ar-small\.json: task kind dense_ar needs a model family that takes vectors; none is built yet/,
     'train on dense_ar: says why') or diag $err;
ok(!-e "$dir/dense-run/config.json", 'train on dense_ar: no run directory written');

# usage errors exit 2
for my $args (['--split', 'valid'], ['--show', '-1'], ['--show', 'x'], ['--seed', '-1'], ['--seed', '1x'],
              ['--bogus'], ['--preset']) {
    my ($s, $o, $e) = run($ach, 'data', @$args);
    is($s, 2, "usage error exits 2: achilles data @$args");
    like($e, qr/achilles: data: /, "usage error explained: achilles data @$args");
}
($st, $out) = run($ach, 'data', '--help');
is($st, 0, 'data --help exits 0');
done_testing();
