#!/usr/bin/perl
# Bad checkpoints and batches given to `achilles grad`: each gets a clear
# error naming the file and the problem, exit status 1, and no crash.
# Bad usage exits 2.
use strict;
use warnings;
use Test::More;
use JSON::PP;
use File::Temp qw(tempdir);
use FindBin;
use lib $FindBin::Bin;
use Safetensors;

my $ach = './build/achilles';
my $dir = tempdir(CLEANUP => 1);
my $json = JSON::PP->new->canonical;

# run achilles; returns (exit status, stderr)
sub run {
    my $cmd = join(' ', map { "'$_'" } @_) . " 2>$dir/err >/dev/null";
    system($cmd);
    my $st = $? == -1 ? -1 : ($? & 127 ? 128 + ($? & 127) : $? >> 8);
    return ($st, slurp("$dir/err"));
}

my ($st, $err) = run($ach, 'init', '--arch', 'mamba2', '--layers', '1', '--d-model', '8', '--d-state', '4',
                     '--headdim', '4', '--vocab', '11', "$dir/good.safetensors");
is($st, 0, 'init writes a tiny checkpoint') or diag $err;

# a batch: tokens [2, 3], labels [2]
my $tok = pack('l<*', 1, 2, 3, 4, 5, 6);
my $lab = pack('l<*', 7, 8);
st_write("$dir/batch.safetensors",
    { tokens => { dtype => 'I32', shape => [2, 3], data_offsets => [0, 24] },
      labels => { dtype => 'I32', shape => [2], data_offsets => [24, 32] } }, $tok . $lab);
($st, $err) = run($ach, 'grad', "$dir/good.safetensors", "$dir/batch.safetensors", "$dir/out.safetensors");
is($st, 0, 'grad on the good checkpoint succeeds') or diag $err;

my ($H, $D) = st_read("$dir/good.safetensors");
my $emb = 'backbone.embedding.weight';
my $inp = 'backbone.layers.0.mixer.in_proj.weight';

# name => [mutator of (header, data) returning bytes or (header, data), expected message]
my @cases = (
    ['truncated', sub { substr(slurp("$dir/good.safetensors"), 0, 500) }, qr/header size|out of range|shorter|truncat/i],
    ['header size too large', sub { pack('Q<', 1 << 40) . 'x' x 64 }, qr/header size/i],
    ['header not JSON', sub { my $h = '{"a": '; pack('Q<', length $h) . $h }, qr/JSON/],
    ['out-of-range offsets', sub { my ($h, $d) = @_; $h->{$emb}{data_offsets}[1] += 4; ($h, $d) }, qr/out of range|size|length|bytes/i],
    ['overlapping offsets', sub { my ($h, $d) = @_;
        my @o = @{ $h->{$inp}{data_offsets} }; $h->{$inp}{data_offsets} = [$o[0] - 4, $o[1] - 4]; ($h, $d) }, qr/overlap|gap|contiguous/i],
    ['wrong dtype', sub { my ($h, $d) = @_; $h->{$emb}{dtype} = 'I32'; ($h, $d) }, qr/'\Q$emb\E'.*dtype I32, expected F32/],
    ['shape mismatch', sub { my ($h, $d) = @_; my $s = $h->{$inp}{shape}; $h->{$inp}{shape} = [$s->[1], $s->[0]]; ($h, $d) },
        qr/'\Q$inp\E': shape \[8, \d+\], expected \[\d+, 8\]/],
    ['missing tensor', sub { st_drop(@_, 'backbone.norm_f.weight') }, qr/missing tensor 'backbone.norm_f.weight'/],
    ['unknown tensor', sub { my ($h, $d) = @_; $h->{'backbone.layers.7.mixer.D'} = { dtype => 'F32', shape => [1],
        data_offsets => [length $d, length($d) + 4] }; ($h, $d . pack('f<', 1)) }, qr/unknown tensor 'backbone.layers.7.mixer.D'/],
    ['no config anywhere, shapes short of one', sub { my ($h, $d) = @_; delete $h->{__metadata__}{config};
        st_drop($h, $d, 'backbone.layers.0.mixer.A_log') },
        qr/no config in the metadata and no config.json beside it, .*missing tensor 'backbone.layers.0.mixer.A_log'/],
    ['config not JSON', sub { my ($h, $d) = @_; $h->{__metadata__}{config} = '{"d_model": 8,'; ($h, $d) }, qr/config is not a JSON object/],
    ['config out of range', sub { my ($h, $d) = @_; my $c = $json->decode($h->{__metadata__}{config});
        $c->{ssm_cfg}{headdim} = 3; $h->{__metadata__}{config} = $json->encode($c); ($h, $d) }, qr/headdim: 3 does not divide/],
    ['untied lm_head', sub { my ($h, $d) = @_; my $o = $h->{'lm_head.weight'}{data_offsets}[0];
        substr($d, $o, 4) = pack('f<', 1234.5); ($h, $d) }, qr/lm_head.weight' differs/],
);

for my $c (@cases) {
    my ($name, $mut, $re) = @$c;
    my ($h, $d) = st_read("$dir/good.safetensors");
    my @r = $mut->($h, $d);
    my $path = "$dir/bad-" . ($name =~ s/\W+/-/gr) . '.safetensors';
    if (@r == 1) { spew($path, $r[0]) } else { st_write($path, @r) }
    my ($s, $e) = run($ach, 'grad', $path, "$dir/batch.safetensors", "$dir/out2.safetensors");
    is($s, 1, "$name: exit status 1");
    like($e, qr/\Q$path\E/, "$name: message names the file");
    like($e, $re, "$name: message says what is wrong") or diag $e;
}
ok(!-e "$dir/out2.safetensors", 'no output written for any bad checkpoint');

# bad batches
my @batches = (
    ['token outside the vocabulary', { tokens => { dtype => 'I32', shape => [1, 2], data_offsets => [0, 8] },
        labels => { dtype => 'I32', shape => [1], data_offsets => [8, 12] } }, pack('l<*', 3, 11, 2), qr/'tokens': value 11 .*outside/],
    ['labels missing', { tokens => { dtype => 'I32', shape => [1, 2], data_offsets => [0, 8] } }, pack('l<*', 3, 1),
        qr/missing tensor 'labels'/],
    ['tokens as F32', { tokens => { dtype => 'F32', shape => [1, 2], data_offsets => [0, 8] },
        labels => { dtype => 'I32', shape => [1], data_offsets => [8, 12] } }, pack('f<f<l<', 3, 1, 2), qr/'tokens': dtype F32, expected I32/],
    ['labels count mismatch', { tokens => { dtype => 'I32', shape => [1, 2], data_offsets => [0, 8] },
        labels => { dtype => 'I32', shape => [2], data_offsets => [8, 16] } }, pack('l<*', 3, 1, 2, 2), qr/'labels': 2 entries for 1 sequences/],
);
for my $b (@batches) {
    my ($name, $h, $d, $re) = @$b;
    st_write("$dir/badbatch.safetensors", $h, $d);
    my ($s, $e) = run($ach, 'grad', "$dir/good.safetensors", "$dir/badbatch.safetensors", "$dir/out3.safetensors");
    is($s, 1, "batch $name: exit status 1");
    like($e, $re, "batch $name: clear message") or diag $e;
}

($st, $err) = run($ach, 'grad', "$dir/nonexistent.safetensors", "$dir/batch.safetensors", "$dir/o.safetensors");
is($st, 1, 'missing checkpoint: exit 1');
like($err, qr/nonexistent.safetensors/, 'missing checkpoint: named');

# usage errors exit 2
for my $args (['init'], ['init', '--layers', 'x', "$dir/u.st"], ['init', '--bogus', '1', "$dir/u.st"],
              ['init', '--headdim', '5', "$dir/u.st"], ['grad', 'a'], ['frobnicate']) {
    my ($s, $e) = run($ach, @$args);
    is($s, 2, "usage error exits 2: achilles @$args");
    like($e, qr/achilles: /, "usage error explained: achilles @$args");
}
($st) = run($ach, '--help');
is($st, 0, '--help exits 0');
done_testing();
