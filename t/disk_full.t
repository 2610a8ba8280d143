#!/usr/bin/perl
# A full disk and a read-only run directory: a clear error naming the file,
# exit status 1, and every earlier file intact (the run resumes elsewhere to
# the same numbers). Needs root to mount a small tmpfs; skips otherwise.
use strict;
use warnings;
use Test::More;
use File::Temp qw(tempdir);
use JSON::PP;
use Digest::MD5 qw(md5_hex);
use Cwd qw(abs_path);

my $ach = abs_path($ENV{ACHILLES_BIN} // './build/achilles');
my $preset = abs_path('t/data/small.json');
my $dir = tempdir(CLEANUP => 1);
my $fs = "$dir/fs";
mkdir $fs or die;
if ($> != 0 || system("mount -t tmpfs -o size=400k tmpfs '$fs' 2>/dev/null") != 0) {
    plan skip_all => 'cannot mount a small tmpfs here (needs root)';
}
END { system("umount '$fs' 2>/dev/null") if $fs && -d $fs }

sub slurp { local $/; open my $f, '<:raw', $_[0] or return undef; my $d = <$f>; close $f; $d }
sub run { system(join(' ', map { "'$_'" } @_) . " >'$dir/out' 2>'$dir/err'"); return ($? >> 8, slurp("$dir/err")) }
sub tensors {
    my $raw = slurp($_[0]) // return {};
    my $n = unpack('Q<', substr($raw, 0, 8));
    my $h = decode_json(substr($raw, 8, $n));
    return { map { my ($b, $e) = @{ $h->{$_}{data_offsets} }; ($_ => md5_hex(substr($raw, 8 + $n + $b, $e - $b))) }
             grep { $_ ne '__metadata__' } keys %$h };
}

my @run = ("preset=$preset", qw(n_layer=2 d_model=16 d_state=8 headdim=8 epochs=8 batch_size=500 ckpt_every=1));
my ($st, $err) = run($ach, 'train', '--quiet', '--out', "$fs/run", @run);
is($st, 1, 'the disk fills up: exit status 1');
like($err, qr/\Q$fs\E\/run\/\S+: .*No space left on device/, 'the message names the file and says the disk is full')
    or diag $err;
ok(!glob("$fs/run/*.tmp") && !glob("$fs/run/ckpt/*.tmp"), 'no temporary file is left behind');
my $state = tensors("$fs/run/state.safetensors");
ok(scalar(keys %$state) > 10, 'the last good state is intact and loads');

# resumed on a disk with room, the run reaches the uninterrupted result
system('cp', '-r', "$fs/run", "$dir/moved") == 0 or die;
($st, $err) = run($ach, 'train', '--quiet', '--resume', "$dir/moved");
is($st, 0, 'the run resumes elsewhere') or diag $err;
($st) = run($ach, 'train', '--quiet', '--out', "$dir/straight", @run);
is_deeply(tensors("$dir/moved/state.safetensors"), tensors("$dir/straight/state.safetensors"),
          'and ends bit-identical to a run that never hit the full disk');

# a read-only run directory: resume says so and changes nothing
my %before = map { $_ => md5_hex(slurp("$fs/run/$_") // '') } qw(config.json metrics.jsonl state.safetensors);
system("mount -o remount,ro '$fs'") == 0 or BAIL_OUT('remount read-only failed');
($st, $err) = run($ach, 'train', '--quiet', '--resume', "$fs/run");
is($st, 1, 'read-only run directory: exit status 1');
like($err, qr/\Q$fs\E\/run\/\S+: .*Read-only file system/, 'the message names the file and the reason') or diag $err;
is_deeply({ map { $_ => md5_hex(slurp("$fs/run/$_") // '') } keys %before }, \%before, 'nothing changed');
done_testing();
