#!/usr/bin/perl
# Crash safety: writers killed with SIGKILL at random instants never leave a
# torn file. Checkpoint saves (achilles init over the same path) and run
# states (achilles train over the same run) are killed again and again; after
# every kill the file on disk loads (old or new content) and the run resumes.
# The workbench's session saves, in place and as snapshots, likewise.
use strict;
use warnings;
use Test::More;
use File::Temp qw(tempdir);
use Time::HiRes qw(usleep time);
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
my $t0 = time;
is(quiet_system(@init, '--seed', 0, $ck), 0, 'a first checkpoint');
quiet_system(@init, '--seed', 0, $ck) for 1 .. 4;
# kills come within four times a save's measured length: about a quarter
# of the saves are killed, on a fast machine or a slow one
my $window = int(1e6 * 4 * (time - $t0) / 5);
my ($killed, $bad) = (0, 0);
for my $i (1 .. 100) {
    $killed++ if kill_after(int(rand($window)), @init, '--seed', $i, $ck) eq 'killed';
    $bad++ if quiet_system($ach, 'grad', $ck, "$dir/batch.safetensors", "$dir/g.safetensors") != 0;
}
diag("$killed of 100 saves were killed mid-way");
cmp_ok($killed, '>', 10, 'many saves were interrupted');
is($bad, 0, 'after every kill the checkpoint on disk loads');

# --- run states: a training run killed again and again, then resumed ------
my @run = ('preset=t/data/small.json', qw(n_layer=2 d_model=16 d_state=8 headdim=8 epochs=40 batch_size=500));
$t0 = time;
is(quiet_system($ach, 'train', '--out', "$dir/straight", @run), 0, 'the run straight through');
# kills come within a fifth of the straight run's time (start-up included), so
# each resume gets a few epochs on before it is killed, on a fast machine or a
# slow one (a sanitizer build)
$window = int(1e6 * (time - $t0) / 5);
is(quiet_system($ach, 'train', '--out', "$dir/run", @run, '--stop-after-steps', 1), 0, 'the run started');
($killed, $bad) = (0, 0);
for my $i (1 .. 60) {
    $killed++ if kill_after(int(rand($window)), $ach, 'train', '--resume', "$dir/run") eq 'killed';
    last if -e "$dir/run/summary.json" && `cat $dir/run/summary.json` =~ /"done"/;
}
diag("$killed resumes were killed");
cmp_ok($killed, '>', 5, 'the run was killed many times');
is(quiet_system($ach, 'train', '--resume', "$dir/run"), 0, 'after the kills the run resumes and finishes');
my $lines = () = `cat $dir/run/metrics.jsonl` =~ /\n/g;
is($lines, 41, 'metrics.jsonl holds each epoch exactly once');
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

# --- 100 workbench session saves killed at random instants ----------------
# t/tui_snapshots.c saves the session sessions/live in place and as the
# snapshot sessions/snap, over and over, while a run trains. After every kill
# each session left behind loads with the workbench's loader, every run
# resumes from its state, and a snapshot's records end where its state does.
my $snap_tool = './build/t/tui_snapshots';
my $ss = "$dir/sessions";
mkdir $ss or die;
local $ENV{ACHILLES_THREADS} = 1;
is(quiet_system($snap_tool, 'make', $ss), 0, 'a workbench session with two runs');
my ($torn, $lost, $mixed, $mid, $checked) = (0, 0, 0, 0, 0);
my $have_snap = 0;
for my $i (1 .. 100) {
    kill_after(int(rand(250000)), $snap_tool, 'save', $ss);
    opendir my $dh, $ss or die;
    my @left = grep { !/^\.\.?$/ } readdir $dh;
    closedir $dh;
    $mid++ if grep { /^\./ } @left; # a snapshot being written when killed
    for my $s (@left) {
        # hidden: a snapshot being written, a session only once complete
        next if $s =~ /^\./ && !-e "$ss/$s/session.json";
        my $out = `$snap_tool check $ss/$s 2>&1`;
        $checked++;
        if ($?) { $torn++; diag("after kill $i, $s: $out"); next }
        $mixed++ if $s eq 'snap' && grep { $_->[0] != $_->[1] } map { [/(\d+) (\d+)/] } $out =~ /^epochs .*$/mg;
    }
    $have_snap ||= -e "$ss/snap";
    $lost++ if $have_snap && !-e "$ss/snap";
}
diag("$mid of 100 kills came while a snapshot was being written; $checked sessions checked");
cmp_ok($mid, '>', 10, 'many snapshot saves were interrupted');
ok($have_snap, 'the snapshot was written');
is($torn, 0, 'after every kill every session left behind loads, and its runs resume');
is($lost, 0, 'the snapshot, once written, is never missing');
is($mixed, 0, 'each snapshot is one save: its records end at its state\'s epoch');
done_testing();
