#!/usr/bin/perl
# `make valgrind`: memcheck over the CLI paths the tests use (tiny sizes, the
# thread pool at 2 threads, error paths too) and a long workbench session in
# tmux (a run trained while the all-one conv, positional encoding and
# blocking are switched, evaluations, heatmaps, a second run, save, load,
# quit). Each passes when valgrind reports no error and no definite or
# indirect leak. Slow (minutes), so not part of `make check`.
use strict;
use warnings;
use Test::More;
use Cwd qw(abs_path getcwd);
use File::Temp qw(tempdir);
use JSON::PP;
use Time::HiRes qw(time);

use FindBin;
use lib $FindBin::Bin;
use TuiTmux;

my $ach = abs_path('build/achilles');
my $dir = tempdir(CLEANUP => 1);
my @vg = ('valgrind', '-q', '--error-exitcode=99', '--leak-check=full', '--errors-for-leak-kinds=definite,indirect',
          '--show-leak-kinds=definite,indirect');
$ENV{ACHILLES_THREADS} = 2;
my $n = 0;

# Runs a command under memcheck ($want: 'ok' for exit 0, 'error' for a clean
# failure); its report goes to $dir/vg-N.PID.log, one per process.
sub vg {
    my ($want, @cmd) = @_;
    my $log = "$dir/vg-" . ++$n;
    my $t0 = time;
    my $pid = fork // die;
    if (!$pid) {
        open STDOUT, '>', '/dev/null';
        open STDERR, '>', "$log.err";
        exec @vg, '--trace-children=yes', "--log-file=$log.%p.log", @cmd;
        die "exec: $!";
    }
    waitpid($pid, 0);
    my $st = $?;
    my $report = join '', map { slurp($_) // '' } glob("$log.*.log");
    my $name = sprintf('%s (%.0f s)', join(' ', map { s/^\Q$dir\E\///r } @cmd[1 .. $#cmd]), time - $t0);
    my $good = !($st & 127) && ($want eq 'ok' ? $st == 0 : ($st >> 8) != 99 && $st != 0);
    ok($good && $report eq '', $name) or diag("exit status " . ($st >> 8) . ", signal " . ($st & 127) . "\n$report"
                                               . (slurp("$log.err") // ''));
}

# --- the CLI ----------------------------------------------------------------
# t/data/small.json with a tenth of its sequences: epochs of a few steps
my $preset = decode_json(slurp('t/data/small.json'));
$preset->{splits}{train}{per_pair} = 40;
$preset->{splits}{test}{per_pair} = 5;
open my $pf, '>', "$dir/tiny.json" or die;
print $pf encode_json($preset);
close $pf;
my $tiny = "preset=$dir/tiny.json n_layer=2 d_model=16 d_state=8 headdim=8 batch_size=100";
my @init = qw(--layers 2 --d-model 16 --d-state 8 --headdim 8 --vocab 64);
vg('ok', $ach, 'init', @init, "$dir/m2.safetensors");
vg('ok', $ach, 'init', '--arch', 'mamba1', @init, "$dir/m1.safetensors");
for my $m (qw(m1 m2)) {
    vg('ok', $ach, 'grad', "t/fixtures/${m}_tiny.ckpt.safetensors", "t/fixtures/${m}_tiny.batch.safetensors", "$dir/g.safetensors");
}
vg('ok', $ach, 'data', '--preset', 't/data/small.json', '--split', 'test', '--counts');
vg('ok', $ach, 'train', '--quiet', '--out', "$dir/run", split(' ', $tiny), 'epochs=2', '--stop-after-steps', 3);
vg('ok', $ach, 'train', '--quiet', '--resume', "$dir/run");
vg('ok', $ach, 'train', '--quiet', '--out', "$dir/m1run", split(' ', $tiny), 'arch=mamba1', 'all_one_conv=on',
   'pos_enc=sinusoidal', 'epochs=1');
vg('ok', $ach, 'analyze', "$dir/run", 'cosine');
vg('ok', $ach, 'analyze', "$dir/run", 'attention', '--index', 3);
vg('ok', $ach, 'analyze', "$dir/run", 'blocking', '--per-pair', 10);
vg('ok', $ach, 'analyze', "$dir/run", 'substitution', '--per-pair', 10);
vg('ok', $ach, 'sweep', 'n_layer=1,2', split(' ', $tiny =~ s/n_layer=2 //r), 'epochs=1', '--out', "$dir/sweep",
   '--workers', 2);
vg('ok', $ach, 'sweep', '--status', "$dir/sweep");
vg('ok', $ach, 'sweep', '--emit', 'slurm', "$dir/sweep", '--time', '01:00:00');
vg('ok', $ach, 'phase', 't/data/sweep-fixture', '--svg', "$dir/fig3.svg", '--csv', "$dir/fig3.csv");
vg('ok', $ach, 'report', 't/data/sweep-fixture', "$dir/run", "$dir/m1run", '--out', "$dir/REPORT.md");
vg('ok', $ach, 'bench', '--layers', 1, '--batch', 16, '--steps', 2);
# error paths: clear messages, nothing leaked on the way out
open my $f, '>:raw', "$dir/torn.safetensors" or die;
print $f substr(slurp("$dir/m2.safetensors"), 0, 300);
close $f;
vg('error', $ach, 'grad', "$dir/torn.safetensors", 't/fixtures/m2_tiny.batch.safetensors', "$dir/g.safetensors");
vg('error', $ach, 'train', '--out', "$dir/bad", 'n_layer=0');
vg('error', $ach, 'train', '--out', "$dir/bad", 'preset=t/data/no-such.json');
vg('error', $ach, 'analyze', "$dir/run", 'cosine', '--layer', 9);
vg('error', $ach, 'sweep', 'n_layer=1,1', '--out', "$dir/bad");
vg('error', $ach, 'data', '--preset', 't/data/no-such.json');

# --- a long workbench session --------------------------------------------------
SKIP: {
    skip('tmux not installed', 4) if !have_tmux();
    my $t0 = time;
    my $log = "$dir/vg-tui.log";
    tmux_start($dir, abs_path('build/achilles-tui'), 100, 50); # a tall log
    my $run1 = "$dir/tiny.json n_layer=1 d_model=16 d_state=8 headdim=8 batch_size=100";
    start("LANG=C.UTF-8 LC_ALL=C.UTF-8 @vg --log-file=$log", 'long');
    my $ok = wait_for(qr/achilles>|EXIT=\d+/, 120) =~ /achilles>/;
    my @steps = (
        ["new $run1 epochs=1000 name=a", qr/run 1 created/],
        ['all_one_conv on', qr/all_one_conv on from epoch/],
        ['pos_enc sinusoidal', qr/pos_enc sinusoidal from epoch/],
        ['block key,anchors layers=all', qr/block key,anchors from epoch/],
        ['eval block key,anchors n=20', qr/blocking key,anchors in layers all \(epoch/],
        ['eval subst n=20', qr/substitution from after in layer 0 \(epoch/],
        ['heatmap attn seq=3', qr/hidden attention, layer 0/],
        ['all_one_conv off', qr/all_one_conv off from epoch/],
        ['block none', qr/block none from epoch/],
        ['new 1 name=b', qr/run 2 created/],
        ['show overlay 1,2', qr/> show overlay 1,2/],
        ['pause 1', qr/run 1 holds at epoch/],
        ['resume 1', qr/run 1 queued again/],
        ['save snap', qr/snapshot 'snap' saved/],
        ['delete 2', qr/run 2 deleted/],
        ['load snap', qr/session 'snap' loaded/],
        ['heatmap cos', qr/run \d conv cosine, layer 0:/],
        ['quit', qr/EXIT=\d+/],
    );
    for my $s (@steps) {
        last if !$ok;
        type($s->[0]);
        $ok = wait_for(qr/$s->[1]|EXIT=\d+/, 300) =~ $s->[1]; # or it died
        diag("the workbench did not answer '$s->[0]'") if !$ok;
    }
    ok($ok, sprintf('a workbench session: %d commands (%.0f s)', scalar @steps, time - $t0));
    my ($code) = screen() =~ /EXIT=(\d+)/;
    is($code, 0, 'it quit cleanly (99: memcheck found something)');
    is(slurp($log) // 'no report', '', 'memcheck: no errors, no definite or indirect leaks') or diag(slurp($log));
    ok(-e "$dir/sessions/snap/session.json", 'the snapshot it saved');
}
done_testing();
