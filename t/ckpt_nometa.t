#!/usr/bin/perl
# Checkpoints without our config in __metadata__ (a mamba_ssm state_dict
# saved with safetensors; t/fixtures/*.nometa.safetensors, written by
# t/torch_ref.py nometa) load: from mamba_ssm's config.json beside the file,
# else from the tensor shapes. Our metadata wins over config.json, and
# config.json over the shapes. Files whose shapes do not determine a config,
# and bad config.json files, get a clear error and exit status 1.
use strict;
use warnings;
use Test::More;
use JSON::PP;
use File::Temp qw(tempdir);
use FindBin;
use lib $FindBin::Bin;
use Safetensors;
use File::Copy qw(copy);
use List::Util qw(max);

my $ach = './build/achilles';
my $fx = 't/fixtures';
my $dir = tempdir(CLEANUP => 1);
my $json = JSON::PP->new->canonical;

# (header, data) with tensor NAME replaced by an F32 one of SHAPE and VALUES
sub st_put {
    my ($h, $d, $name, $shape, @v) = @_;
    ($h, $d) = st_drop($h, $d, $name);
    $h->{$name} = { dtype => 'F32', shape => $shape, data_offsets => [length $d, length($d) + 4 * @v] };
    return ($h, $d . pack('f<*', @v));
}

# name => [shape, values] of every F32/F64 tensor in a file
sub tensors {
    my ($h, $d) = st_read($_[0]);
    my %t;
    for my $k (grep { $_ ne '__metadata__' } keys %$h) {
        my ($b, $e) = @{ $h->{$k}{data_offsets} };
        my $fmt = { F32 => 'f<*', F64 => 'd<*' }->{ $h->{$k}{dtype} } or next;
        $t{$k} = [$h->{$k}{shape}, [unpack($fmt, substr($d, $b, $e - $b))]];
    }
    return \%t;
}

# largest |a - b| over every tensor of two grad outputs; undef unless they
# hold the same tensors with the same shapes
sub max_diff {
    my ($x, $y) = @_;
    return undef unless join(' ', sort keys %$x) eq join(' ', sort keys %$y);
    my $m = 0;
    for my $k (keys %$x) {
        my ($a, $b) = ($x->{$k}[1], $y->{$k}[1]);
        return undef unless "@{ $x->{$k}[0] }" eq "@{ $y->{$k}[0] }" && @$a == @$b;
        $m = max($m, map { abs($a->[$_] - $b->[$_]) } 0 .. $#$a);
    }
    return $m;
}

# run achilles; returns (exit status, stderr)
sub run {
    my $cmd = join(' ', map { "'$_'" } @_) . " 2>$dir/err >$dir/out";
    system($cmd);
    my $st = $? == -1 ? -1 : ($? & 127 ? 128 + ($? & 127) : $? >> 8);
    return ($st, slurp("$dir/err"));
}

# a fresh directory holding FILE as model.safetensors and, if given, TEXT as
# config.json; returns the model's path
my $ndir = 0;
sub place {
    my ($file, $config) = @_;
    my $d = "$dir/d" . $ndir++;
    mkdir $d or die "$d: $!";
    copy($file, "$d/model.safetensors") or die "$file: $!";
    spew("$d/config.json", $config) if defined $config;
    return "$d/model.safetensors";
}

my %note = (
    m1_tiny => 'mamba1, n_layer 1, d_model 8, vocab_size 11, d_state 4, d_conv 4, expand 2, dt_rank 1',
    m2_tiny => 'mamba2, n_layer 3, d_model 8, vocab_size 11, d_state 4, d_conv 3, expand 2, headdim 4 (assumed ngroups 1)',
);

for my $c (qw(m1_tiny m2_tiny)) {
    my $batch = "$fx/$c.batch.safetensors";
    my ($st, $err) = run($ach, 'grad', "$fx/$c.ckpt.safetensors", $batch, "$dir/$c-meta.safetensors");
    is($st, 0, "$c: grad with our metadata") or diag $err;
    is($err, '', "$c: with our metadata, no note");
    my $want = tensors("$dir/$c-meta.safetensors");

    # no config at all: the shapes
    my $m = place("$fx/$c.nometa.safetensors");
    ($st, $err) = run($ach, 'grad', $m, $batch, "$dir/$c-shapes.safetensors");
    is($st, 0, "$c: grad without a config") or diag $err;
    is($err, "achilles: note: $m: no config in the metadata and no config.json; inferred from the shapes: $note{$c}\n",
       "$c: the note says the config was inferred, and what it is");
    my $d = max_diff($want, tensors("$dir/$c-shapes.safetensors"));
    ok(defined $d && $d == 0, "$c: the inferred config gives the same loss, logits and gradients (max difference "
       . ($d // 'n/a') . ')');

    # config.json beside it
    $m = place("$fx/$c.nometa.safetensors", slurp("$fx/$c.config.json"));
    (my $cj = $m) =~ s{model\.safetensors$}{config.json};
    ($st, $err) = run($ach, 'grad', $m, $batch, "$dir/$c-json.safetensors");
    is($st, 0, "$c: grad with config.json") or diag $err;
    is($err, "achilles: note: $m: no config in the metadata; read $cj\n", "$c: the note names config.json");
    $d = max_diff($want, tensors("$dir/$c-json.safetensors"));
    ok(defined $d && $d == 0, "$c: config.json gives the same loss, logits and gradients (max difference "
       . ($d // 'n/a') . ')');

    # our metadata wins over a config.json beside the file, even a broken one
    $m = place("$fx/$c.ckpt.safetensors", '{ not json');
    ($st, $err) = run($ach, 'grad', $m, $batch, "$dir/$c-both.safetensors");
    is($st, 0, "$c: our metadata is used over config.json") or diag $err;
    is($err, '', "$c: config.json is not read when the metadata has the config");
}

# m2_tiny's shapes also fit ngroups 2 with d_state 2 (ngroups * d_state is
# what they fix): a config.json saying so is read, not the shapes
{
    my $c = $json->decode(slurp("$fx/m2_tiny.config.json"));
    @{ $c->{ssm_cfg} }{qw(d_state ngroups)} = (2, 2);
    my $m = place("$fx/m2_tiny.nometa.safetensors", $json->encode($c));
    my ($st, $err) = run($ach, 'grad', $m, "$fx/m2_tiny.batch.safetensors", "$dir/o.safetensors");
    is($st, 1, 'config.json over the shapes: its ngroups 2 is refused, exit 1');
    like($err, qr{/config\.json: config field 'ssm_cfg\.ngroups' is 2; only 1 is supported$}m,
         'config.json over the shapes: the message names config.json and the field') or diag $err;
}

# m2_pad: config.json's vocab_size 13 rounds up to 16 (pad_vocab_size_multiple
# 8), the embedding's rows; the results match the PyTorch reference's
{
    my $m = place("$fx/m2_pad.nometa.safetensors", slurp("$fx/m2_pad.config.json"));
    my ($st, $err) = run($ach, 'grad', $m, "$fx/m2_pad.batch.safetensors", "$dir/pad.safetensors");
    is($st, 0, 'm2_pad: grad with config.json (vocab_size 13, padded to 16)') or diag $err;
    my ($got, $want) = (tensors("$dir/pad.safetensors"), tensors("$fx/m2_pad.expected.safetensors"));
    is("@{ $got->{logits}[0] }", '3 16', 'm2_pad: the logits cover the padded vocabulary');
    my ($worst, $bad) = (0, '');
    for my $k (sort keys %$want) {
        my ($a, $b) = ($got->{$k}[1], $want->{$k}[1]);
        if (!$a || @$a != @$b) { $bad .= " $k"; next }
        my $scale = max(map { abs } @$b);
        my $err = max(map { abs($a->[$_] - $b->[$_]) } 0 .. $#$b);
        $worst = max($worst, $err / $scale);
        $bad .= " $k" if $err > 5e-5 * $scale;
    }
    is($bad, '', sprintf('m2_pad: every tensor within 5e-5 of its largest value of the reference (worst %.2g)', $worst));

    $m = place("$fx/m2_pad.nometa.safetensors");
    ($st, $err) = run($ach, 'grad', $m, "$fx/m2_pad.batch.safetensors", "$dir/pad2.safetensors");
    is($st, 0, 'm2_pad without config.json: grad') or diag $err;
    like($err, qr/inferred from the shapes: mamba2, n_layer 1, d_model 8, vocab_size 16, /, 'm2_pad: the shapes give 16');

    my $c = $json->decode(slurp("$fx/m2_pad.config.json"));
    $c->{pad_vocab_size_multiple} = 1;
    $m = place("$fx/m2_pad.nometa.safetensors", $json->encode($c));
    ($st, $err) = run($ach, 'grad', $m, "$fx/m2_pad.batch.safetensors", "$dir/o.safetensors");
    is($st, 1, 'm2_pad, config.json without the padding: exit 1');
    like($err, qr/'backbone\.embedding\.weight': shape \[16, 8\], expected \[13, 8\] from the config/,
         'm2_pad, config.json without the padding: the embedding does not fit') or diag $err;
}

# analyze reads them the same way
{
    my ($st, $err) = run($ach, 'analyze', "$fx/m2_tiny.ckpt.safetensors", 'cosine');
    my $want = slurp("$dir/out") =~ s/^model: \S+/model: FILE/mr;
    is($st, 0, 'analyze with our metadata') or diag $err;
    like($want, qr/^model: FILE \(mamba2, 3 layers\)$/m, 'analyze names the model');
    ($st, $err) = run($ach, 'analyze', place("$fx/m2_tiny.nometa.safetensors"), 'cosine');
    is($st, 0, 'analyze without a config') or diag $err;
    like($err, qr/inferred from the shapes/, 'analyze: the note');
    is(slurp("$dir/out") =~ s/^model: \S+/model: FILE/mr, $want,
       'analyze without a config prints what it prints with our metadata, but the file name');
}

# shapes that do not determine a config, and shapes the inferred config
# does not fit: [what, file, mutator of (header, data), expected message]
my $l0 = 'backbone.layers.0.mixer';
my @shapes = (
    ["layer 0's norm missing", 'm2_tiny', sub { st_drop(@_, "$l0.norm.weight") },
        qr/missing tensor '\Q$l0\E.norm.weight'/],
    ["layer 0's dt_proj missing", 'm1_tiny', sub { st_drop(@_, "$l0.dt_proj.weight") },
        qr/missing tensor '\Q$l0\E.dt_proj.weight'/],
    ['no layer tensors', 'm2_tiny',
        sub { my ($h, $d) = @_; ($h, $d) = st_drop($h, $d, $_) for grep { /^backbone\.layers\./ } keys %$h; ($h, $d) },
        qr/no model family recognises its tensors \(Mamba's: backbone\.layers\.0\.\*\)/],
    ["layer 0's A_log missing", 'm1_tiny', sub { st_drop(@_, "$l0.A_log") },
        qr/missing tensor '\Q$l0\E.A_log' \(Mamba-1: \[d_inner, d_state\]/],
    ['the embedding missing', 'm2_tiny', sub { st_drop(@_, 'backbone.embedding.weight') },
        qr/missing tensor 'backbone.embedding.weight'/],
    ['a norm of rank 2', 'm2_tiny', sub { my ($h, $d) = @_; $h->{"$l0.norm.weight"}{shape} = [8, 2]; ($h, $d) },
        qr/tensor '\Q$l0\E.norm.weight' has rank 2, expected 1/],
    ['conv1d narrower than d_inner', 'm2_tiny',
        sub { my ($h, $d) = @_; $h->{"$l0.conv1d.weight"}{shape} = [12, 2, 3]; ($h, $d) },
        qr/layer 0's conv1d has 12 channels, not d_inner 16 \(mixer.norm.weight\) \+ 2 \* d_state/],
    ['d_inner 15 leaves an odd conv1d remainder', 'm2_tiny', sub { st_put(@_, "$l0.norm.weight", [15], (1) x 15) },
        qr/layer 0's conv1d has 24 channels, not d_inner 15 \(mixer.norm.weight\) \+ 2 \* d_state/],
    ['3 heads in d_inner 16', 'm2_tiny', sub { st_put(@_, "$l0.A_log", [3], 0, 0, 0) },
        qr/layer 0's d_inner 16 \(mixer.norm.weight\) is not a multiple of its 3 heads \(mixer.A_log\)/],
    # layer 0 determines the config; another layer missing a tensor fails to load
    ["layer 2's D missing", 'm2_tiny', sub { st_drop(@_, 'backbone.layers.2.mixer.D') },
        qr/missing tensor 'backbone.layers.2.mixer.D'/],
);
for my $s (@shapes) {
    my ($what, $c, $mut, $re) = @$s;
    my $m = place("$fx/$c.nometa.safetensors");
    st_write($m, $mut->(st_read($m)));
    my ($st, $err) = run($ach, 'grad', $m, "$fx/$c.batch.safetensors", "$dir/o.safetensors");
    is($st, 1, "$c, $what: exit 1");
    like($err, qr/^achilles: grad: \Q$m\E: .*$re/m, "$c, $what: the message names the file and the problem") or diag $err;
}
is((run($ach, 'grad', place("$fx/m2_tiny.nometa.safetensors"), "$fx/m2_tiny.batch.safetensors",
         "$dir/ok.safetensors"))[0], 0, 'unchanged, the file loads: the cases above fail for their change');

# bad config.json files: [what, text or a change to m1_tiny's config.json,
# expected message]
my @configs = (
    ['not JSON', '{"d_model": 8,', qr/config is not a JSON object/],
    ['d_model a string', sub { $_[0]{d_model} = 'eight' }, qr/config field 'd_model' must be an integer/],
    ['ssm_cfg.d_state 4.5', sub { $_[0]{ssm_cfg}{d_state} = 4.5 }, qr/config field 'ssm_cfg.d_state' must be an integer/],
    ['ssm_cfg a string', sub { $_[0]{ssm_cfg} = 'Mamba1' }, qr/config field 'ssm_cfg' missing or not an object/],
    ['Mamba3', sub { $_[0]{ssm_cfg}{layer} = 'Mamba3' }, qr/config field 'ssm_cfg.layer' is 'Mamba3', not Mamba1 or Mamba2/],
    ['d_intermediate 16', sub { $_[0]{d_intermediate} = 16 },
        qr/config field 'd_intermediate' is 16; only 0 \(no MLP\) is supported/],
    ['rms_norm false', sub { $_[0]{rms_norm} = JSON::PP::false }, qr/config field 'rms_norm' must be true/],
    ['tie_embeddings false', sub { $_[0]{tie_embeddings} = JSON::PP::false }, qr/config field 'tie_embeddings' must be true/],
    ['attention layers', sub { $_[0]{attn_layer_idx} = [0] }, qr/config field 'attn_layer_idx' must be empty/],
    ['ssm_cfg.bias true', sub { $_[0]{ssm_cfg}{bias} = JSON::PP::true }, qr/config field 'ssm_cfg.bias' must be false/],
    ['pad_vocab_size_multiple 0', sub { $_[0]{pad_vocab_size_multiple} = 0 },
        qr/config field 'pad_vocab_size_multiple' is 0; it must be at least 1/],
    ['ssm_cfg.d_conv 0', sub { $_[0]{ssm_cfg}{d_conv} = 0 }, qr/config: d_conv: 0 is out of range/],
);
for my $b (@configs) {
    my ($what, $text, $re) = @$b;
    if (ref $text) {
        my $c = $json->decode(slurp("$fx/m1_tiny.config.json"));
        $text->($c);
        $text = $json->encode($c);
    }
    my $m = place("$fx/m1_tiny.nometa.safetensors", $text);
    (my $cj = $m) =~ s{model\.safetensors$}{config.json};
    my ($st, $err) = run($ach, 'grad', $m, "$fx/m1_tiny.batch.safetensors", "$dir/o.safetensors");
    is($st, 1, "config.json with $what: exit 1");
    like($err, qr/^achilles: grad: \Q$cj\E: $re/m, "config.json with $what: the message names it and the field")
        or diag $err;
}
# the shapes would give n_layer 1: config.json's 2 is used, and does not fit
{
    my $c = $json->decode(slurp("$fx/m1_tiny.config.json"));
    $c->{n_layer} = 2;
    my $m = place("$fx/m1_tiny.nometa.safetensors", $json->encode($c));
    my ($st, $err) = run($ach, 'grad', $m, "$fx/m1_tiny.batch.safetensors", "$dir/o.safetensors");
    is($st, 1, "config.json's n_layer 2 for a 1-layer file: exit 1");
    like($err, qr/\Q$m\E: missing tensor 'backbone.layers.1.mixer.in_proj.weight'/, 'the missing layer named')
        or diag $err;
}
ok(!-e "$dir/o.safetensors", 'no output written for any bad input');
done_testing();
