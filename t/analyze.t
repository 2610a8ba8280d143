#!/usr/bin/perl
# `achilles analyze`: every analysis of a small run and of a fresh checkpoint,
# as tables and as JSON, with real values checked; bad requests get clear
# messages and the documented exit status (1 bad file or failed analysis,
# 2 bad usage).
use strict;
use warnings;
use Test::More;
use JSON::PP;
use File::Temp qw(tempdir);

my $ach = $ENV{ACHILLES_BIN} // './build/achilles';
my $dir = tempdir(CLEANUP => 1);
$ENV{LC_ALL} = 'C';    # ASCII shades unless a test asks for UTF-8

sub slurp { local $/; open my $f, '<:raw', $_[0] or return undef; my $d = <$f>; close $f; $d }
sub run {    # (exit status, stdout, stderr)
    my $cmd = join(' ', map { "'$_'" } @_) . " >$dir/out 2>$dir/err";
    system($cmd);
    my $st = $? & 127 ? 128 + ($? & 127) : $? >> 8;
    return ($st, slurp("$dir/out"), slurp("$dir/err"));
}
sub analyze_json {    # decoded JSON of a successful `achilles analyze ... --json`, or undef
    my ($st, $out, $err) = run($ach, 'analyze', @_, '--json');
    is($st, 0, "analyze @_ --json") or diag $err;
    my $j = eval { decode_json($out // '') };
    ok($j, 'one JSON object on stdout') or diag $out;
    return $j;
}
sub in01 { my $v = shift; defined $v && !ref $v && $v =~ /^[-0-9.eE+]+$/ && $v >= 0 && $v <= 1 }

# --- a small trained run and a fresh checkpoint --------------------------------
my $run = "$dir/run";
my ($st, $out, $err) = run($ach, 'train', '--quiet', '--out', $run, 'preset=t/data/small.json',
                           qw(n_layer=2 d_model=16 d_state=8 headdim=8 epochs=2 batch_size=500
                              lr_max=1e-2 lr_min=1e-4 warmup_epochs=1));
is($st, 0, 'a small run to analyse') or diag $err;
my $ckpt = "$dir/fresh.safetensors";
($st, undef, $err) = run($ach, 'init', qw(--layers 2 --d-model 16 --d-state 8 --headdim 8 --vocab 64 --gamma 1), $ckpt);
is($st, 0, 'a fresh checkpoint with the small preset\'s vocabulary') or diag $err;
my @small = ('--preset', 't/data/small.json');

# --- cosine --------------------------------------------------------------------
sub check_cosine {    # K x K, unit diagonal, symmetric, within [-1, 1]
    my ($m, $what) = @_;
    my $K = 4;
    my ($shape, $diag, $sym, $range) = (1, 1, 1, 1);
    $shape &&= ref $m eq 'ARRAY' && @$m == $K;
    for my $i (0 .. $K - 1) {
        $shape &&= ref $m->[$i] eq 'ARRAY' && @{ $m->[$i] } == $K or last;
        $diag &&= abs($m->[$i][$i] - 1) < 1e-6;
        for my $j (0 .. $K - 1) {
            $sym &&= abs($m->[$i][$j] - $m->[$j][$i]) < 1e-12;
            $range &&= $m->[$i][$j] >= -1 - 1e-9 && $m->[$i][$j] <= 1 + 1e-9;
        }
    }
    ok($shape, "$what: $K x $K");
    ok($shape && $diag, "$what: unit diagonal");
    ok($shape && $sym, "$what: symmetric");
    ok($shape && $range, "$what: entries in [-1, 1]");
}
my $j = analyze_json($run, 'cosine');
is(scalar @{ $j->{layers} // [] }, 2, 'cosine of a run: every layer');
is($j->{epoch}, 2, 'the run\'s latest state is epoch 2');
for my $l (@{ $j->{layers} // [] }) {
    check_cosine($l->{now}, "run layer $l->{layer}, now");
    check_cosine($l->{epoch0}, "run layer $l->{layer}, epoch 0");
}
is_deeply([@{ $j->{paper} }{qw(offdiag_min offdiag_max)}], [-0.11, 0.35], 'the paper\'s range comes with it');
$j = analyze_json($ckpt, 'cosine', '--layer', 1);
is_deeply([map { $_->{layer} } @{ $j->{layers} // [] }], [1], 'cosine --layer 1: that layer only');
check_cosine($j->{layers}[0]{now}, 'checkpoint layer 1');
ok(!exists $j->{layers}[0]{epoch0}, 'a checkpoint file has no epoch 0 beside it');
$j = analyze_json($run, 'cosine', '--epoch', 0);
is_deeply([map { $_->{now} } @{ $j->{layers} }], [map { $_->{epoch0} } @{ $j->{layers} }],
          'cosine --epoch 0 of a run: the checkpoint equals epoch 0');

($st, $out, $err) = run($ach, 'analyze', $run, 'cosine');
is($st, 0, 'cosine table') or diag $err;
like($out, qr/layer 0\b.*layer 1\b/s, 'every layer');
like($out, qr/epoch 0 +now \(epoch 2\)/, 'epoch 0 beside now');
like($out, qr/k0 +1\.000 /, 'the table of numbers');
like($out, qr/k3 [ .:=+*#%\@-]{12}/, 'an ASCII heatmap row in the C locale');
like($out, qr/scale: -1 \[ \.:-=\+\*#%\@\] 1/, 'with its scale');
like($out, qr/paper.*2 layers.*-0\.11 and 0\.35/, 'the paper\'s reference');
SKIP: {
    skip 'no C.UTF-8 locale', 3 unless grep { /^C\.utf-?8$/i } split /\n/, `locale -a 2>/dev/null`;
    local $ENV{LC_ALL} = 'C.UTF-8';
    ($st, $out) = run($ach, 'analyze', $ckpt, 'cosine');
    like($out, qr/\x{e2}\x{96}\x{88}/, 'UTF-8 locale: block shades (full block on the diagonal)');
    like($out, qr/\xce\xb3 = 1/, 'UTF-8 locale: gamma as a Greek letter');
    ($st, $out) = run($ach, 'analyze', $ckpt, 'cosine', '--ascii');
    unlike($out, qr/\x{e2}\x{96}/, '--ascii: no block shades in a UTF-8 locale');
}

# --- attention -------------------------------------------------------------------
sub check_attention {    # L x L, zero above the diagonal, numbers below
    my ($S, $L, $what) = @_;
    ok(ref $S eq 'ARRAY' && @$S == $L && !grep({ ref $_ ne 'ARRAY' || @$_ != $L } @$S), "$what: $L x $L");
    my ($upper, $lower) = (1, 1);
    for my $t (0 .. $L - 1) {
        for my $s (0 .. $L - 1) {
            my $v = $S->[$t][$s];
            if ($s > $t) { $upper &&= defined $v && $v == 0 }
            else { $lower &&= defined $v && !ref $v && $v =~ /^-?[0-9.]+(e[-+]?\d+)?$/i }
        }
    }
    ok($upper, "$what: zero above the diagonal");
    ok($lower, "$what: finite numbers on and below it");
}
$j = analyze_json($run, 'attention');
check_attention($j->{S}, 6, 'run, test sequence 0, layer 0, mean over heads');
ok(defined $j->{key} && $j->{key} >= 0 && $j->{key} <= 3, "the key's position is marked ($j->{key})");
is_deeply($j->{anchors}, [$j->{key} + 1, $j->{key} + 2], 'both anchors are marked');
is($j->{split}, 'test', 'default: the test split');
ok(grep({ $_ != 0 } map { @$_ } @{ $j->{S} }), 'S is not all zero');
$j = analyze_json($run, 'attention', qw(--layer 1 --head 3 --split train --index 17));
check_attention($j->{S}, 6, 'layer 1, head 3, train sequence 17');
is_deeply([@$j{qw(layer head split index)}], [1, 3, 'train', 17], 'the request is recorded');
$j = analyze_json($ckpt, 'attention', @small, '--tokens', '30,31,1,2,33');
check_attention($j->{S}, 5, 'checkpoint, --tokens');
is_deeply([$j->{key}, $j->{anchors}, $j->{tokens}], [1, [2, 3], [30, 31, 1, 2, 33]], '--tokens: key and anchors found');

($st, $out, $err) = run($ach, 'analyze', $run, 'attention', '--index', 3);
is($st, 0, 'attention table') or diag $err;
like($out, qr/tokens \(\[key\] <anchor>\):.*\[\d+\] <\d> <\d>/, 'the sequence with key and anchors marked');
my @rows = $out =~ /^ *\d (?:\[\d+\]|<\d>|\d+) +[ .:=+*#%\@-]{12}$/mg;
is(scalar @rows, 6, 'a heatmap of 6 labelled rows');
like($out, qr/^ +0 1 2 3 4 5$/m, 'and labelled columns');

# --- blocking --------------------------------------------------------------------
sub check_pairs {
    my ($j, $key, $n, $count, $what) = @_;
    my @p = @{ $j->{pairs} // [] };
    is(scalar @p, $count, "$what: $count pairs");
    ok(!grep({ !in01($_->{$key}) } @p), "$what: every value in [0, 1]");
    ok(!grep({ $_->{n} != $n } @p), "$what: $n sequences per pair") if defined $n;
    ok(in01($j->{overall}), "$what: overall $j->{overall}");
}
$j = analyze_json($run, 'blocking');
check_pairs($j, 'unchanged', 50, 16, 'blocking key,anchors');
is_deeply([@$j{qw(positions layers per_pair)}], ['key,anchors', 'all', 480], 'the defaults: the paper\'s setting');
is_deeply([@{ $j->{paper} }{qw(pair43 other_pairs per_pair)}], [0.994, 1, 480], 'the paper\'s numbers come with it');
cmp_ok($j->{overall}, '<', 1, 'blocking the key and anchors changes at least one prediction');
$j = analyze_json($ckpt, 'blocking', @small, '--positions', '0,anchor2', qw(--layers 1 --per-pair 7));
check_pairs($j, 'unchanged', 7, 16, 'blocking position 0 and anchor2 in layer 1, 7 per pair');
is_deeply([@$j{qw(positions layers)}], ['anchor2,0', '1'], 'the spec as the library reads it');

($st, $out, $err) = run($ach, 'analyze', $run, 'blocking', '--per-pair', 10);
is($st, 0, 'blocking table') or diag $err;
is(scalar(() = $out =~ /^\d\d +10 +[01]\.\d{3}  1\.00$/mg), 15, 'a row per pair with the paper\'s 1.00 beside it');
like($out, qr/^43 +10 +[01]\.\d{3}  0\.994$/m, 'and pair 43 with 0.994');
like($out, qr/^overall +160 +[01]\.\d{3}/m, 'and the overall value');

# --- substitution ------------------------------------------------------------------
$j = analyze_json($run, 'substitution');
check_pairs($j, 'collapse', undef, 15, 'substitution after the anchors');
ok(!grep({ !in01($_->{unchanged}) } @{ $j->{pairs} }) && in01($j->{unchanged}),
   'with the fraction of predictions it leaves unchanged, per pair and overall');
ok(!grep({ $_->{pair} eq '43' } @{ $j->{pairs} }), 'pair 43 (the twin) is left out');
my $counted = 0;
$counted += $_->{n} for @{ $j->{pairs} };
is($counted + $j->{skipped}, 15 * 50, "sequences substituted ($counted) + skipped ($j->{skipped}) = all");
ok($j->{skipped} > 0, 'sequences whose anchors end them are skipped');
is_deeply([@{ $j->{paper} }{qw(collapse_min collapse_max)}], [0.983, 1], 'the paper\'s range comes with it');
$j = analyze_json($ckpt, 'substitution', @small, qw(--from anchors --layer 1 --per-pair 9));
check_pairs($j, 'collapse', 9, 15, 'substitution from the anchors on, layer 1');
is($j->{skipped}, 0, 'from the anchors on: nothing skipped');

($st, $out, $err) = run($ach, 'analyze', $run, 'substitution', '--per-pair', 20);
is($st, 0, 'substitution table') or diag $err;
is(scalar(() = $out =~ /^\d\d +\d+ +[01]\.\d{3} +[01]\.\d{3}  0\.983-1\.0$/mg), 15,
   'a row per pair: collapse, unchanged and the paper\'s range');
like($out, qr/^skipped: \d+ sequences/m, 'the skipped count');

# --- bad requests ------------------------------------------------------------------------
# a preset without anchors 4 and 3, from the small one
my $p = decode_json(slurp('t/data/small.json'));
$p->{name} = 'two-anchors';
$p->{anchors} = [@{ $p->{anchors} }[0, 1]];
delete @$p{qw(special_pairs held_out)};
open my $pf, '>', "$dir/two.json" or die;
print $pf encode_json($p);
close $pf;
open my $bad, '>:raw', "$dir/truncated.safetensors" or die;
print $bad substr(slurp($ckpt), 0, 200);
close $bad;

my @errors = (
    [[$run, 'cosine', '--layer', 2], 2, qr/layer 2 does not exist \(the model has layers 0\.\.1\)/],
    [[$run, 'attention', '--layer', 5], 2, qr/layer 5 does not exist/],
    [[$run, 'substitution', '--layer', 2], 2, qr/layer 2 does not exist/],
    [[$run, 'attention', '--head', 4], 2, qr/head 4 does not exist \(0\.\.3/],
    [[$run, 'attention', '--index', 800], 2, qr/--index 800 is beyond the test split \(0\.\.799\)/],
    [[$run, 'attention', '--tokens', '30,31,x'], 2, qr/--tokens: item 3/],
    [[$run, 'blocking', '--positions', 6], 2, qr/6 is beyond the sequence \(0\.\.5\)/],
    [[$run, 'blocking', '--positions', 'keys'], 2, qr/'keys' is not key, anchor1, anchor2, anchors/],
    [[$run, 'blocking', '--layers', 2], 2, qr/block_layers: 2 is beyond the model's layers/],
    [[$run, 'substitution', '--from', 6], 2, qr/--from: position 6 is beyond the sequence/],
    [[$run, 'frobnicate'], 2, qr/unknown analysis 'frobnicate'/],
    [[$run], 2, qr/which analysis/],
    [[$run, 'cosine', '--bogus'], 2, qr/unknown option '--bogus'/],
    [[$run, 'cosine', '--head', 0], 2, qr/--head does not apply to cosine/],
    [[$run, 'blocking', '--per-pair', -3], 2, qr/bad value '-3' for --per-pair/],
    [[$ckpt, 'cosine', '--epoch', 0], 2, qr/--epoch needs a run directory/],
    [[$run, 'cosine', '--epoch', 7], 1, qr/epoch_0007\.safetensors/],
    [[$ckpt, 'substitution', '--preset', "$dir/two.json"], 1, qr/no anchors 4 and 3/],
    [["$dir/missing.safetensors", 'cosine'], 1, qr/missing\.safetensors: No such file/],
    [["$dir/truncated.safetensors", 'cosine'], 1, qr/truncated\.safetensors/],
    [[$ckpt, 'blocking'], 1, qr/preset 'composite' .* vocabulary 201 but the model in .*fresh\.safetensors has 64/],
    [[$run, 'attention', '--preset', 'nonexistent'], 1, qr/nonexistent/],
);
for my $e (@errors) {
    my ($args, $want, $re) = @$e;
    my @a = @$args;
    $a[0] =~ s/^\Q$dir\E/DIR/;
    ($st, $out, $err) = run($ach, 'analyze', @$args);
    is($st, $want, "analyze @a: exit status $want");
    like($err, $re, "analyze @a: says why") or diag $err;
}

($st, $out) = run($ach, 'help', 'analyze');
is($st, 0, 'achilles help analyze');
like($out, qr/cosine.*attention.*blocking.*substitution/s, 'it names every analysis');

done_testing();
