#!/usr/bin/perl
# `achilles train`: the run directory, exact resumption (whole epochs, mid-
# epoch, after a kill), learning on a reduced preset, and bad settings.
use strict;
use warnings;
use Test::More;
use JSON::PP;
use File::Temp qw(tempdir);
use Digest::MD5 qw(md5_hex);
use POSIX qw(WNOHANG);

my $ach = $ENV{ACHILLES_BIN} // './build/achilles';
my $dir = tempdir(CLEANUP => 1);
my $preset = 't/data/small.json';
my @small = ("preset=$preset", qw(n_layer=2 d_state=16 headdim=16 lr_max=1e-2 lr_min=1e-4 warmup_epochs=2));

sub slurp { local $/; open my $f, '<:raw', $_[0] or return undef; my $d = <$f>; close $f; $d }
sub run {    # (exit status, stdout, stderr)
    my $cmd = join(' ', map { "'$_'" } @_) . " >$dir/out 2>$dir/err";
    system($cmd);
    my $st = $? & 127 ? 128 + ($? & 127) : $? >> 8;
    return ($st, slurp("$dir/out"), slurp("$dir/err"));
}
# metrics records without the wall-clock fields
sub records {
    my @r = map { my $j = decode_json($_); delete @$j{qw(seq_per_s elapsed_s)}; JSON::PP->new->canonical->encode($j) }
        split /\n/, slurp("$_[0]/metrics.jsonl") // '';
    return \@r;
}
# tensor name => md5 of its bytes, for a safetensors file
sub tensors {
    my $raw = slurp($_[0]) // return {};
    my $n = unpack('Q<', substr($raw, 0, 8));
    my $h = decode_json(substr($raw, 8, $n));
    my %t;
    for my $k (grep { $_ ne '__metadata__' } keys %$h) {
        my ($b, $e) = @{ $h->{$k}{data_offsets} };
        $t{$k} = md5_hex(substr($raw, 8 + $n + $b, $e - $b));
    }
    return \%t;
}

# --- it learns, and the run directory has everything --------------------
my ($st, $out, $err) = run($ach, 'train', '--out', "$dir/learn", @small, qw(epochs=12 batch_size=100 ckpt_every=5));
is($st, 0, 'a small run trains') or diag $err;
like($out, qr/epoch\s+12\/12 .*seq\/s\s+ETA/, 'progress lines with rate and ETA');
for my $f (qw(config.json preset.json metrics.jsonl training_log.csv summary.json state.safetensors
              ckpt/epoch_0000.safetensors ckpt/epoch_0005.safetensors ckpt/epoch_0010.safetensors
              ckpt/epoch_0012.safetensors)) {
    ok(-s "$dir/learn/$f", "run directory has $f");
}
my @lines = split /\n/, slurp("$dir/learn/metrics.jsonl");
is(scalar @lines, 13, 'one record per epoch, epoch 0 included');
my $last = decode_json($lines[-1]);
cmp_ok($last->{acc_seen}, '>=', 0.8, "seen-pair test accuracy after 12 epochs is high ($last->{acc_seen})");
ok(exists $last->{acc_pair}{43} && exists $last->{acc43_comp} && exists $last->{acc43_sym}, 'pair 43 scored against both answers');
is(scalar(split /\n/, slurp("$dir/learn/training_log.csv")), 14, 'CSV: header and 13 rows');
my $sum = decode_json(slurp("$dir/learn/summary.json"));
is($sum->{status}, 'done', 'summary says done');
is($sum->{final}{epoch}, 12, 'summary holds the final record');
my $cfg = decode_json(slurp("$dir/learn/config.json"));
is($cfg->{lr_max}, 0.01, 'config.json holds the resolved settings');
is($cfg->{beta2}, 0.999, 'config.json holds the defaults too');
is($cfg->{seed}, '0', 'seed stored as a string');
# a run checkpoint is a model checkpoint too (optimizer tensors are skipped)
open my $bf, '>:raw', "$dir/batch.safetensors" or die;
my $h = '{"labels":{"dtype":"I32","shape":[1],"data_offsets":[24,28]},"tokens":{"dtype":"I32","shape":[1,6],"data_offsets":[0,24]}}';
$h .= ' ' x ((8 - length($h) % 8) % 8);
print $bf pack('Q<', length $h) . $h . pack('l<*', 30, 31, 1, 2, 33, 34, 36);
close $bf;
($st, $out, $err) = run($ach, 'grad', "$dir/learn/ckpt/epoch_0012.safetensors", "$dir/batch.safetensors", "$dir/g.safetensors");
is($st, 0, 'achilles grad loads a run checkpoint') or diag $err;

# --- exact resumption ------------------------------------------------------
my @quick = (@small, qw(epochs=4 batch_size=500));
($st) = run($ach, 'train', '--quiet', '--out', "$dir/straight", @quick);
is($st, 0, '4 epochs straight');
($st) = run($ach, 'train', '--quiet', '--out', "$dir/halves", @quick, '--stop-after-epochs', 2);
is($st, 0, 'first 2 epochs');
is(scalar @{ records("$dir/halves") }, 3, 'paused after epoch 2');
($st) = run($ach, 'train', '--quiet', '--resume', "$dir/halves");
is($st, 0, 'resume for the last 2');
is_deeply(records("$dir/halves"), records("$dir/straight"), '2 + resume + 2: the same metrics as 4 straight');
is_deeply(tensors("$dir/halves/state.safetensors"), tensors("$dir/straight/state.safetensors"),
          '2 + resume + 2: bit-identical weights and optimizer state');
($st) = run($ach, 'train', '--quiet', '--out', "$dir/mid", @quick, '--stop-after-steps', 7);
($st) = run($ach, 'train', '--quiet', '--resume', "$dir/mid", '--stop-after-steps', 11) if $st == 0;
($st) = run($ach, 'train', '--quiet', '--resume', "$dir/mid") if $st == 0;
is($st, 0, 'stopped mid-epoch twice and resumed');
is_deeply(tensors("$dir/mid/state.safetensors"), tensors("$dir/straight/state.safetensors"),
          'mid-epoch resume: bit-identical');
is_deeply(records("$dir/mid"), records("$dir/straight"), 'mid-epoch resume: same metrics');

# the thread count does not change a single bit
($st) = run($ach, 'train', '--quiet', '--out', "$dir/t1", @quick, 'threads=1');
($st) = run($ach, 'train', '--quiet', '--out', "$dir/t2", @quick, 'threads=2') if $st == 0;
is($st, 0, 'the same run at 1 and at 2 threads');
is_deeply(tensors("$dir/t1/state.safetensors"), tensors("$dir/t2/state.safetensors"), '1 vs 2 threads: bit-identical state');
is_deeply(records("$dir/t1"), records("$dir/t2"), '1 vs 2 threads: the same metrics');

# killed at an arbitrary moment with SIGTERM: the state it saved resumes exactly
my @long = (@small, qw(epochs=60 batch_size=500));
($st) = run($ach, 'train', '--quiet', '--out', "$dir/long", @long);
is($st, 0, '60 epochs straight');
my $pid = fork // die;
if (!$pid) {
    open STDOUT, '>', '/dev/null';
    open STDERR, '>', '/dev/null';
    exec $ach, 'train', '--quiet', '--out', "$dir/killed", @long;
}
# The kill waits for the run to be under way rather than for a fixed time (the
# whole run takes under a second on a fast machine): after 2-11 of its 61
# epoch records, plus a random part of an epoch, so it lands at an arbitrary
# point of a step or a save with ~50 epochs still to go.
my $after = 2 + int(rand(10));
my $code;
while (1) {
    my $n = () = (slurp("$dir/killed/metrics.jsonl") // '') =~ /\n/g;
    if (waitpid($pid, WNOHANG) == $pid) { $code = $? >> 8; last } # ended by itself: the check below fails
    last if $n >= $after;
    select(undef, undef, undef, 0.002);
}
if (!defined $code) {
    select(undef, undef, undef, rand(0.02));
    kill 'TERM', $pid;
    waitpid($pid, 0);
    $code = $? >> 8;
}
is($code, 130, 'SIGTERM mid-run: state saved, exit status 130');
($st, $out, $err) = run($ach, 'train', '--quiet', '--resume', "$dir/killed");
is($st, 0, 'resumed after SIGTERM') or diag $err;
is_deeply(tensors("$dir/killed/state.safetensors"), tensors("$dir/long/state.safetensors"),
          'after SIGTERM + resume: bit-identical');
is_deeply(records("$dir/killed"), records("$dir/long"), 'after SIGTERM + resume: the same metrics');

# --- bad settings: clear errors, nothing lost ----------------------------------
my @bad = (
    [['bogus=1'], 2, qr/unknown key 'bogus'/],
    [['gamma=20'], 2, qr/key 'gamma': 20 is out of range/],
    [['n_layer=two'], 2, qr/key 'n_layer': 'two' is not an integer/],
    [['arch=mamba3'], 2, qr/key 'arch': 'mamba3' is not one of mamba1\|mamba2/],
    [['headdim=5'], 2, qr/headdim: 5 does not divide/],
    [['preset=nonexistent'], 1, qr/nonexistent/],
    [['preset=t/data/missing.json'], 1, qr/missing.json/],
    [['lr_min=1e-2', 'lr_max=1e-3'], 2, qr/lr_min .* above lr_max/],
    [['--config', "$dir/nope.json"], 2, qr/nope.json/],
);
for my $b (@bad) {
    my ($args, $want, $re) = @$b;
    ($st, $out, $err) = run($ach, 'train', '--out', "$dir/bad", @$args);
    is($st, $want, "train @$args: exit $want");
    like($err, $re, "train @$args: says what is wrong") or diag $err;
}
ok(!-e "$dir/bad/config.json", 'no run was started by a bad setting');

# a key of the other model family is accepted and ignored, as before the key
# table had families: one sweep grid or config.json serves both
($st, $out, $err) = run($ach, 'train', '--quiet', '--out', "$dir/m1", @small, qw(arch=mamba1 headdim=5 epochs=1));
is($st, 0, 'arch=mamba1 headdim=5 trains (headdim is mamba2 only; 5 would not divide d_inner)') or diag $err;
is(decode_json(slurp("$dir/m1/config.json") // '{}')->{headdim}, 5, 'config.json keeps the value it ignores');
my @m1 = keys %{ tensors("$dir/m1/state.safetensors") };
ok(grep({ $_ eq 'backbone.layers.0.mixer.dt_proj.weight' } @m1), 'the model is Mamba-1');
($st, $out) = run($ach, 'train', '--help');
my @live = $out =~ /^  (\S+) .*\(live\) \[/mg;
is("@live", 'all_one_conv pos_enc block block_layers block_train', 'train --help marks the live keys');
like($out, qr/^  headdim .*\(mamba2 only\) \[64\]$/m, 'and headdim as mamba2 only');
like($out, qr/^  dt_rank .*\(mamba1 only\) \[0\]$/m, 'and dt_rank as mamba1 only');

# an existing run is never overwritten
my %before = map { $_ => md5_hex(slurp("$dir/straight/$_")) } qw(config.json metrics.jsonl state.safetensors);
($st, $out, $err) = run($ach, 'train', '--out', "$dir/straight", @quick);
is($st, 1, 'a new run into an existing run directory is refused');
like($err, qr/already holds a run.*--resume/, 'and the message says how to resume');
is_deeply({ map { $_ => md5_hex(slurp("$dir/straight/$_")) } keys %before }, \%before, 'the existing run is untouched');

# not writable: the parent is a file
open my $ff, '>', "$dir/afile" or die; close $ff;
($st, $out, $err) = run($ach, 'train', '--out', "$dir/afile/run", @quick);
is($st, 1, 'unwritable run directory: exit 1');
like($err, qr/afile/, 'unwritable run directory: named');

# corrupt and foreign runs
system('cp', '-r', "$dir/straight", "$dir/corrupt");
truncate("$dir/corrupt/state.safetensors", 100);
%before = map { $_ => md5_hex(slurp("$dir/corrupt/$_")) } qw(config.json metrics.jsonl state.safetensors);
($st, $out, $err) = run($ach, 'train', '--resume', "$dir/corrupt");
is($st, 1, 'resume of a corrupt state: exit 1');
like($err, qr/state.safetensors/, 'resume of a corrupt state: names the file') or diag $err;
is_deeply({ map { $_ => md5_hex(slurp("$dir/corrupt/$_")) } keys %before }, \%before, 'the corrupt run is left as it was');
($st, $out, $err) = run($ach, 'train', '--resume', "$dir/afile");
is($st, 1, 'resume of something that is not a run: exit 1');
like($err, qr/config.json/, 'resume of something that is not a run: says config.json is missing');
system('cp', '-r', "$dir/straight", "$dir/foreign");
my $fc = decode_json(slurp("$dir/foreign/config.json"));
$fc->{n_layer} = 3;
open my $fh, '>', "$dir/foreign/config.json" or die; print $fh encode_json($fc); close $fh;
($st, $out, $err) = run($ach, 'train', '--resume', "$dir/foreign");
is($st, 1, 'resume where config.json and the state disagree: exit 1');
like($err, qr/does not match/, 'and says they do not match');
($st, $out, $err) = run($ach, 'train', '--resume', "$dir/straight", 'gamma=1');
is($st, 2, '--resume with new settings is a usage error');

# a learned positional encoding from the start: the run sizes its table from the task
($st, $out, $err) = run($ach, 'train', '--quiet', '--out', "$dir/pel", @small, 'epochs=2', 'pos_enc=learned');
is($st, 0, 'pos_enc=learned from the start trains') or diag $err;
my $pst = slurp("$dir/pel/state.safetensors") // '';
my ($hlen) = unpack('Q<', $pst);
my $hdr = substr($pst, 8, $hlen // 0);
like($hdr, qr/"backbone\.pos_embedding\.weight":\{"dtype":"F32","shape":\[6, ?32\]/,
     'its state has the learned table, one row per position of the task');
($st, $out, $err) = run($ach, 'train', '--quiet', '--resume', "$dir/pel");
is($st, 0, 'and resumes') or diag $err;
done_testing();
