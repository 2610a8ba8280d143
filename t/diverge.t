#!/usr/bin/perl
# Divergence: a run whose loss becomes NaN stops with a clear message and
# exit status 1, marks itself failed in summary.json, and keeps its last good
# state untouched. (A NaN is planted in a saved state, then resumed.)
use strict;
use warnings;
use Test::More;
use File::Temp qw(tempdir);
use JSON::PP;
use Digest::MD5 qw(md5_hex);

my $ach = $ENV{ACHILLES_BIN} // './build/achilles';
my $dir = tempdir(CLEANUP => 1);
sub slurp { local $/; open my $f, '<:raw', $_[0] or return undef; my $d = <$f>; close $f; $d }
sub run { system(join(' ', map { "'$_'" } @_) . " >'$dir/out' 2>'$dir/err'"); return ($? >> 8, slurp("$dir/err")) }

my @run = ('preset=t/data/small.json', qw(n_layer=2 d_model=16 d_state=8 headdim=8 epochs=4 batch_size=500));
my ($st, $err) = run($ach, 'train', '--quiet', '--out', "$dir/run", @run, '--stop-after-epochs', 1);
is($st, 0, 'one epoch trained') or diag $err;

# plant a NaN in the final norm's first weight of the saved state
my $path = "$dir/run/state.safetensors";
my $raw = slurp($path);
my $n = unpack('Q<', substr($raw, 0, 8));
my $h = decode_json(substr($raw, 8, $n));
my $off = 8 + $n + $h->{'backbone.norm_f.weight'}{data_offsets}[0];
substr($raw, $off, 4) = pack('L<', 0x7fc00000);
open my $f, '>:raw', $path or die;
print $f $raw;
close $f;
my $before = md5_hex(slurp($path));

($st, $err) = run($ach, 'train', '--quiet', '--resume', "$dir/run");
is($st, 1, 'the diverging run exits with status 1');
like($err, qr/diverged at epoch 1 step \d+: loss nan/i, 'and says where and why') or diag $err;
my $sum = decode_json(slurp("$dir/run/summary.json"));
is($sum->{status}, 'failed', 'summary.json: status failed');
like($sum->{stop_reason}, qr/diverged/, 'summary.json: the reason');
is(md5_hex(slurp($path)), $before, 'the last saved state is kept as it was');
done_testing();
