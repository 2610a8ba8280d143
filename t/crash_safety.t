#!/usr/bin/perl
# Crash safety: writers killed with SIGKILL at random instants never leave a
# torn file. Checkpoint saves (achilles init over the same path) and run
# states (achilles train over the same run) are killed again and again; after
# every kill the file on disk loads (old or new content) and the run resumes.
use strict;
use warnings;
use Test::More;
use File::Temp qw(tempdir);
use Time::HiRes qw(usleep);
use JSON::PP;
use Digest::MD5 qw(md5_hex);

my $ach = $ENV{ACHILLES_BIN} // './build/achilles';
my $dir = tempdir(CLEANUP => 1);
srand(12345);

sub quiet_system { my $pid = fork // die; if (!$pid) { open STDOUT, '>', '/dev/null'; open STDERR, '>', '/dev/null'; exec @_ } waitpid($pid, 0); return $? }
# start a command, SIGKILL it after $us microseconds; returns how it ended
sub kill_after {
    my ($us, @cmd) = @_;
    my $pid = fork // die;
    if (!$pid) { open STDOUT, '>', '/dev/null'; open STDERR, '>', '/dev/null'; exec @cmd }
    usleep($us);
    kill 'KILL', $pid;
    waitpid($pid, 0);
    return $? & 127 ? 'killed' : 'finished';
}

# a batch for achilles grad: tokens [1, 6], labels [1]
open my $bf, '>:raw', "$dir/batch.safetensors" or die;
my $h = '{"labels":{"dtype":"I32","shape":[1],"data_offsets":[24,28]},"tokens":{"dtype":"I32","shape":[1,6],"data_offsets":[0,24]}}';
$h .= ' ' x ((8 - length($h) % 8) % 8);
print $bf pack('Q<', length $h) . $h . pack('l<*', 30, 31, 1, 2, 33, 34, 36);
close $bf;

# --- 100 checkpoint saves killed at random instants -----------------------
my $ck = "$dir/model.safetensors";
my @init = ($ach, 'init', qw(--layers 4 --d-model 64 --d-state 64 --vocab 64));
is(quiet_system(@init, '--seed', 0, $ck), 0, 'a first checkpoint');
my ($killed, $bad) = (0, 0);
for my $i (1 .. 100) {
    $killed++ if kill_after(int(rand(30000)), @init, '--seed', $i, $ck) eq 'killed';
    $bad++ if quiet_system($ach, 'grad', $ck, "$dir/batch.safetensors", "$dir/g.safetensors") != 0;
}
diag("$killed of 100 saves were killed mid-way");
cmp_ok($killed, '>', 10, 'many saves were interrupted');
is($bad, 0, 'after every kill the checkpoint on disk loads');

# --- run states: a training run killed again and again, then resumed ------
my @run = ('preset=t/data/small.json', qw(n_layer=2 d_model=16 d_state=8 headdim=8 epochs=6 batch_size=500));
is(quiet_system($ach, 'train', '--out', "$dir/straight", @run), 0, 'the run straight through');
is(quiet_system($ach, 'train', '--out', "$dir/run", @run, '--stop-after-steps', 1), 0, 'the run started');
($killed, $bad) = (0, 0);
for my $i (1 .. 60) {
    $killed++ if kill_after(int(rand(120000)), $ach, 'train', '--resume', "$dir/run") eq 'killed';
    last if -e "$dir/run/summary.json" && `cat $dir/run/summary.json` =~ /"done"/;
}
diag("$killed resumes were killed");
cmp_ok($killed, '>', 5, 'the run was killed many times');
is(quiet_system($ach, 'train', '--resume', "$dir/run"), 0, 'after the kills the run resumes and finishes');
my $lines = () = `cat $dir/run/metrics.jsonl` =~ /\n/g;
is($lines, 7, 'metrics.jsonl holds each epoch exactly once');
# tensor name => md5 of its bytes (the metadata holds wall time, so not the whole file)
sub tensors {
    open my $f, '<:raw', $_[0] or return {};
    local $/;
    my $raw = <$f>;
    my $n = unpack('Q<', substr($raw, 0, 8));
    my $hd = decode_json(substr($raw, 8, $n));
    return { map { my ($b, $e) = @{ $hd->{$_}{data_offsets} }; ($_ => md5_hex(substr($raw, 8 + $n + $b, $e - $b))) }
             grep { $_ ne '__metadata__' } keys %$hd };
}
is_deeply(tensors("$dir/run/state.safetensors"), tensors("$dir/straight/state.safetensors"),
          'and the final weights and optimizer state equal the uninterrupted run\'s, bit for bit');
done_testing();
