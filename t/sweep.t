#!/usr/bin/perl
# `achilles sweep`: grids and manifests, clear errors, skip / resume / start
# over on tiny runs, a kill mid-way and a restart (every run exactly once),
# two sweeps at once, --run-index, --status and the Slurm script.
use strict;
use warnings;
use Test::More;
use JSON::PP;
use File::Temp qw(tempdir);
use Fcntl qw(:flock);
use Digest::MD5 qw(md5_hex);
use POSIX qw(:sys_wait_h);

my $ach = $ENV{ACHILLES_BIN} // './build/achilles';
my $dir = tempdir(CLEANUP => 1);
# the tiny model of the brief: a run of 2 epochs takes about half a second
my @tiny = ('preset=t/data/small.json', qw(d_model=16 d_state=8 headdim=8 batch_size=500 threads=1));

sub slurp { local $/; open my $f, '<:raw', $_[0] or return undef; my $d = <$f>; close $f; $d }
sub run {    # (exit status, stdout, stderr)
    my $cmd = join(' ', map { my $a = $_; $a =~ s/'/'\\''/g; "'$a'" } @_) . " >$dir/out 2>$dir/err";
    system($cmd);
    my $st = $? & 127 ? 128 + ($? & 127) : $? >> 8;
    return ($st, slurp("$dir/out") // '', slurp("$dir/err") // '');
}
sub manifest { decode_json(slurp("$_[0]/manifest.json")) }
sub nlines { my $t = slurp($_[0]) // ''; my @l = split /\n/, $t; scalar @l }
# every run: epochs 0..E once each in metrics.jsonl, one config.json, done
sub check_exactly_once {
    my ($sweep, $epochs, $what) = @_;
    my $m = manifest($sweep);
    my @bad;
    for my $r (@{ $m->{runs} }) {
        my $rd = "$sweep/$r->{dir}";
        my @ep = map { decode_json($_)->{epoch} } split /\n/, (slurp("$rd/metrics.jsonl") // '');
        my $sum = decode_json(slurp("$rd/summary.json") // '{}');
        my @cfg = glob("$rd/config.json*");
        push @bad, "$r->{dir}: epochs @ep" unless "@ep" eq join(' ', 0 .. $epochs);
        push @bad, "$r->{dir}: config files @cfg" unless @cfg == 1;
        push @bad, "$r->{dir}: not done" unless ($sum->{status} // '') eq 'done';
    }
    ok(!@bad, "$what: every run has epochs 0..$epochs exactly once, one config.json, done") or diag join("\n", @bad);
}

# --- grids and manifests ------------------------------------------------------
my ($st, $out, $err) = run($ach, 'sweep', 'n_layer=2,3', 'gamma=0.5,1.0,2', 'seed=7', @tiny, '--out', "$dir/dry", '--dry-run');
is($st, 0, '--dry-run') or diag $err;
my @rows = grep { /^\s+\d+\s+start/ } split /\n/, $out;
is(scalar @rows, 6, '--dry-run lists 2 x 3 = 6 runs');
like($rows[0], qr{runs/0000-L2-g0\.5\s+n_layer=2 gamma=0\.5$}, 'run 0 is n_layer=2 gamma=0.5');
like($rows[5], qr{runs/0005-L3-g2\s+n_layer=3 gamma=2$}, 'run 5 is n_layer=3 gamma=2 (the first key varies slowest)');
ok(!-e "$dir/dry", '--dry-run writes nothing');

open my $sf, '>', "$dir/spec.json" or die;
# written out by hand: the grid's key order is the expansion order
print $sf '{"name": "specced", "base": {"epochs": 2}, "grid": {"gamma": [0.1, 1], "all_one_conv": [false, true]}}';
close $sf;
($st, $out, $err) = run($ach, 'sweep', "$dir/spec.json", @tiny, '--out', "$dir/specced", '--emit', 'slurm');
is($st, 0, 'SPEC.json plus key=value, manifest and Slurm script without running') or diag $err;
my $m = manifest("$dir/specced");
is($m->{name}, 'specced', 'manifest: the name');
is($m->{nruns}, 4, 'manifest: 4 runs');
is_deeply($m->{grid}, { gamma => ['0.1', '1'], all_one_conv => ['off', 'on'] }, 'manifest: the grid, values as given');
like(delete $m->{base}{preset}, qr{^/.+/t/data/small\.json$}, 'manifest: a relative preset path is stored absolute');
is_deeply($m->{base}, { epochs => '2', d_model => '16', d_state => '8', headdim => '8', batch_size => '500',
                        threads => '1' }, 'manifest: the fixed settings');
is_deeply([map { $_->{index} } @{ $m->{runs} }], [0 .. 3], 'manifest: indices 0..3');
is_deeply($m->{runs}[1]{settings}, { gamma => '0.1', all_one_conv => 'on' }, 'manifest: run 1 settings');
is($m->{runs}[1]{dir}, 'runs/0001-g0.1-all_one_conv=on', 'manifest: run 1 directory');
ok(!-e "$dir/specced/runs", 'nothing trained by --emit');

# bad grids: exit 2, a message naming the problem, nothing written
my @bad = (
    [['bogus=1,2'], qr/unknown key 'bogus'/],
    [['gamma=0.5,abc'], qr/key 'gamma': 'abc' is not a number/],
    [['n_layer=two'], qr/key 'n_layer': 'two' is not an integer/],
    [['gamma=0.5,,1'], qr/empty value/],
    [['gamma=1,1'], qr/value '1' is listed twice/],
    [['gamma=1,2', 'gamma=3'], qr/key 'gamma' is given twice/],
    [['seed=1'], qr/no grid/],
    [['headdim=5,8'], qr/run 0 \(headdim=5\): .*headdim/],
    [['seed=0,1', 'preset=nonexistent'], qr/run 0 \(seed=0\): .*no preset 'nonexistent'/],
    [['seed=0,1', 'preset=dense-ar-small'], qr/run 0 \(seed=0\): .*task kind dense_ar needs a model family that takes vectors/],
    [['gamma=1,2', '--workers', '0'], qr/--workers needs a positive integer/],
    [['gamma=1,2', '--emit', 'pbs'], qr/the one scheduler is slurm/],
    [['gamma=1,2', '--time', '1:00'], qr/go with --emit slurm/],
);
for my $b (@bad) {
    ($st, $out, $err) = run($ach, 'sweep', @{ $b->[0] }, '--out', "$dir/bad");
    is($st, 2, "sweep @{ $b->[0] }: exit 2");
    like($err, $b->[1], "sweep @{ $b->[0] }: says what is wrong") or diag $err;
}
my $k = 0;
for my $spec (['{"grid": {"gamma": []}}', qr/spec\d\.json: grid: key 'gamma': the list of values is empty/],
              ['{"grid": {"gamma": 1}}', qr/grid\.gamma: must be a list/],
              ['{"grid": {"gamma": [1]}, "nmae": "x"}', qr/unknown field 'nmae'/],
              ['{"grid": ', qr/JSON syntax error/]) {
    $k++;
    open my $f, '>', "$dir/spec$k.json" or die; print $f $spec->[0]; close $f;
    ($st, $out, $err) = run($ach, 'sweep', "$dir/spec$k.json", '--out', "$dir/bad");
    ok($st == 1 || $st == 2, "bad spec $spec->[0]: refused");
    like($err, $spec->[1], "bad spec $spec->[0]: names the file and the problem") or diag $err;
}
ok(!-e "$dir/bad", 'no sweep directory was made by a bad grid');

# --- a sweep of tiny runs: start, skip, resume, start over ---------------------
my @grid = ('n_layer=2,3', 'seed=0,1', 'epochs=2', @tiny);
($st, $out, $err) = run($ach, 'sweep', @grid, '--out', "$dir/s", '--emit', 'slurm');
is($st, 0, 'a sweep directory made (no runs yet)');
# run 1 trained for 1 epoch by hand, then stopped: the sweep resumes it
my $m1 = manifest("$dir/s")->{runs}[1];
($st) = run($ach, 'train', '--quiet', '--out', "$dir/s/$m1->{dir}", @tiny, 'epochs=2',
            map({ "$_=$m1->{settings}{$_}" } sort keys %{ $m1->{settings} }), '--stop-after-epochs', 1);
is($st, 0, 'run 1 trained 1 epoch of 2 by hand');
# run 2: an interrupted start (config.json and a record, no state): starts over
my $m2 = manifest("$dir/s")->{runs}[2];
system('mkdir', '-p', "$dir/s/$m2->{dir}");
system('cp', "$dir/s/$m1->{dir}/config.json", "$dir/s/$m2->{dir}/config.json");
system('cp', "$dir/s/$m1->{dir}/metrics.jsonl", "$dir/s/$m2->{dir}/metrics.jsonl");
($st, $out, $err) = run($ach, 'sweep', "$dir/s", '--dry-run');
like($out, qr/1\s+resume\s/, '--dry-run on a sweep: run 1 would resume');
like($out, qr/2\s+start over/, '--dry-run on a sweep: run 2 would start over');
($st, $out, $err) = run($ach, 'sweep', "$dir/s", '--workers', 2);
is($st, 0, 'the sweep runs') or diag "$out\n$err";
like($out, qr/run 1 \(n_layer=2 seed=1\): resuming at epoch 1\/2/, 'run 1 resumed at epoch 1');
like($out, qr/run 2 \(n_layer=3 seed=0\): its start was interrupted.*starting over/, 'run 2 started over');
like($out, qr/run 0 \(n_layer=2 seed=0\): starting in runs\/0000-L2-s0/, 'run 0 started');
like($out, qr/\d+\/4 done, \d+ running, \d+ queued; ETA \S+/, 'progress lines: done, running, queued, ETA');
like($out, qr/4\/4 done, 0 running, 0 queued/, 'all 4 done at the end');
check_exactly_once("$dir/s", 2, 'start, resume, start over');
# run 2's config is its own again, not the copy of run 1's
is(decode_json(slurp("$dir/s/$m2->{dir}/config.json"))->{n_layer}, 3, 'run 2 restarted with its own settings');
my %md5 = map { $_ => md5_hex(slurp($_)) } glob("$dir/s/runs/*/metrics.jsonl");
($st, $out, $err) = run($ach, 'sweep', "$dir/s", '--workers', 2);
is($st, 0, 'running a finished sweep again');
like($out, qr/4 runs, 4 done, 0 to run/, 'says there is nothing to run');
unlike($out, qr/starting|resuming/, 'starts nothing');
is_deeply({ map { $_ => md5_hex(slurp($_)) } glob("$dir/s/runs/*/metrics.jsonl") }, \%md5, 'and changes nothing');
# the same grid again into the same directory continues it; a different one is refused
($st, $out, $err) = run($ach, 'sweep', @grid, '--out', "$dir/s");
is($st, 0, 'the same grid into the same directory: continues');
($st, $out, $err) = run($ach, 'sweep', 'n_layer=2,4', 'seed=0,1', 'epochs=2', @tiny, '--out', "$dir/s");
is($st, 1, 'a different grid into it: refused');
like($err, qr/holds a different sweep/, 'and says why');

# --status
($st, $out, $err) = run($ach, 'sweep', '--status', "$dir/s");
is($st, 0, '--status');
like($out, qr/4 runs: 4 done/, '--status: the count');
like($out, qr/^\s+3\s+done\s+2\/2\s+\d\.\d{3}\s+\d\.\d{3}\s+\d\.\d{3}\s+n_layer=3 seed=1\s+runs\/0003-L3-s1$/m,
     '--status: state, epoch, comp43, sym43, seen, settings, directory per run') or diag $out;
($st, $out, $err) = run($ach, 'sweep', '--status', "$dir/nowhere");
is($st, 1, '--status of a missing directory: exit 1');
like($err, qr/nowhere/, 'and names it');

# --- --until-epoch: the first epochs of a longer schedule, then on from there -------
my @ugrid = ('seed=0,1', 'epochs=3', @tiny);
($st, $out, $err) = run($ach, 'sweep', @ugrid, '--out', "$dir/u", '--workers', 2, '--until-epoch', 1);
is($st, 0, '--until-epoch 1: exit 0 with every run held') or diag "$out\n$err";
like($out, qr/run 0 \(seed=0\): held at epoch 1\/3 \(--until-epoch 1\)/, 'run 0 held at epoch 1 of 3');
like($out, qr/2 of 2 runs at epoch 1, 0 done/, 'the closing line says where the runs are');
for my $r (@{ manifest("$dir/u")->{runs} }) {
    my @ep = map { decode_json($_)->{epoch} } split /\n/, (slurp("$dir/u/$r->{dir}/metrics.jsonl") // '');
    is("@ep", '0 1', "$r->{dir}: epochs 0 and 1 recorded");
    ok(-e "$dir/u/$r->{dir}/state.safetensors" && !-e "$dir/u/$r->{dir}/summary.json"
       || decode_json(slurp("$dir/u/$r->{dir}/summary.json"))->{status} ne 'done', "$r->{dir}: stopped, not done");
    is(decode_json(slurp("$dir/u/$r->{dir}/config.json"))->{epochs}, 3, "$r->{dir}: its schedule is still 3 epochs");
}
($st, $out, $err) = run($ach, 'sweep', "$dir/u", '--until-epoch', 1);
is($st, 0, '--until-epoch 1 again: nothing to do');
unlike($out, qr/starting|resuming/, 'starts nothing');
($st, $out, $err) = run($ach, 'sweep', "$dir/u", '--workers', 2);
is($st, 0, 'then without it: the runs go on') or diag "$out\n$err";
like($out, qr/resuming at epoch 1\/3/, 'resumed at epoch 1');
check_exactly_once("$dir/u", 3, '--until-epoch then on');
($st, $out, $err) = run($ach, 'sweep', "$dir/u", '--until-epoch', 0);
is($st, 2, '--until-epoch 0: a usage error');

# --- kill mid-way, restart: every run exactly once ---------------------------------
my @long = ('n_layer=2,3', 'seed=0,1,2', 'epochs=6', @tiny);
for my $round (1, 2) {
    my $sd = "$dir/k$round";
    my $pid = fork // die;
    if (!$pid) {
        open STDOUT, '>', "$sd.log"; open STDERR, '>&', \*STDOUT;
        exec $ach, 'sweep', @long, '--out', $sd, '--workers', 2;
    }
    # round 1 early (runs may be starting), round 2 later (some finished)
    select(undef, undef, undef, $round == 1 ? 0.3 + rand(0.5) : 1.5 + rand(1.5));
    kill 'TERM', $pid;
    waitpid($pid, 0);
    my $code = $? >> 8;
    my $log = slurp("$sd.log");
    ok($code == 130 || $code == 0, "round $round: SIGTERM stops the sweep (status $code)");
    like($log, qr/stopping: signal 15 forwarded to \d+ worker/, "round $round: forwarded to the workers") if $code == 130;
    my @left = grep { !/^$/ } map { my $s = decode_json(slurp($_) // '{}'); ($s->{status} // '') ne 'done' ? $_ : '' }
        map { "$sd/$_->{dir}/summary.json" } @{ manifest($sd)->{runs} };
    ($st, $out, $err) = run($ach, 'sweep', $sd, '--workers', 2);
    is($st, 0, "round $round: the restarted sweep finishes") or diag "$out\n$err";
    check_exactly_once($sd, 6, "round $round: killed and restarted");
    my $starts = 0;
    $starts += () = (slurp("$sd/$_->{dir}/train.log") // '') =~ /== achilles sweep: starting/g for @{ manifest($sd)->{runs} };
    cmp_ok($starts, '>=', 6, "round $round: each run started at least once (resumes are not starts)");
}

# --- two sweeps at once on one directory: no run twice ----------------------------
($st) = run($ach, 'sweep', 'n_layer=2,3', 'seed=0,1', 'epochs=3', @tiny, '--out', "$dir/two", '--emit', 'slurm');
my @pids;
for my $k (1, 2) {
    my $pid = fork // die;
    if (!$pid) {
        open STDOUT, '>', "$dir/two$k.log"; open STDERR, '>&', \*STDOUT;
        exec $ach, 'sweep', "$dir/two";
    }
    push @pids, $pid;
}
my @codes = map { waitpid($_, 0); $? >> 8 } @pids;
is_deeply(\@codes, [0, 0], 'two sweeps on one directory: both end with every run done');
check_exactly_once("$dir/two", 3, 'two sweeps at once');
my $total = 0;
$total += () = (slurp("$dir/two/$_->{dir}/train.log") // '') =~ /== achilles sweep: (starting|resuming)/g
    for @{ manifest("$dir/two")->{runs} };
is($total, 4, 'each run was trained by exactly one process');

# --- --run-index: one run, under the same rules -------------------------------------
($st) = run($ach, 'sweep', 'gamma=0.5,1', 'epochs=2', @tiny, 'n_layer=2', '--out', "$dir/one", '--emit', 'slurm');
($st, $out, $err) = run($ach, 'sweep', '--run-index', 1, "$dir/one");
is($st, 0, '--run-index 1') or diag "$out\n$err";
my $mo = manifest("$dir/one");
ok(-s "$dir/one/$mo->{runs}[1]{dir}/summary.json", 'run 1 trained');
ok(!-e "$dir/one/$mo->{runs}[0]{dir}/config.json", 'run 0 untouched');
($st, $out, $err) = run($ach, 'sweep', '--run-index', 1, "$dir/one");
is($st, 0, '--run-index of a finished run: nothing to do');
like($out, qr/already done/, 'and says so');
# a lock held elsewhere: left to its holder
system('mkdir', '-p', "$dir/one/$mo->{runs}[0]{dir}");
open my $lk, '>>', "$dir/one/$mo->{runs}[0]{dir}/sweep.lock" or die;
flock($lk, LOCK_EX) or die;
($st, $out, $err) = run($ach, 'sweep', '--run-index', 0, "$dir/one");
is($st, 0, '--run-index of a run another process holds: exit 0');
like($out, qr/held by another process.*leaving it/, 'and leaves it to that process');
ok(!-e "$dir/one/$mo->{runs}[0]{dir}/config.json", 'without touching it');
($st, $out, $err) = run($ach, 'sweep', '--status', "$dir/one");
like($out, qr/^\s+0\s+running\s/m, '--status shows the locked run as running');
close $lk;
($st, $out, $err) = run($ach, 'sweep', '--run-index', 2, "$dir/one");
is($st, 2, '--run-index beyond the sweep: exit 2');
like($err, qr/runs 0 to 1/, 'and says which runs exist');

# --- the Slurm script -------------------------------------------------------------
($st, $out, $err) = run($ach, 'sweep', '--emit', 'slurm', "$dir/s", '--partition', 'debug', '--time', '00:10:00',
                        '--cpus', 2, '--mem', '1G');
is($st, 0, '--emit slurm on a sweep directory') or diag $err;
my $sb = slurp("$dir/s/sweep.sbatch") // '';
like($sb, qr/^#!\/bin\/bash\n/, 'a bash script');
like($sb, qr/^#SBATCH --array=0-3$/m, 'one array task per run');
like($sb, qr/^#SBATCH --partition=debug$/m, '--partition');
like($sb, qr/^#SBATCH --time=00:10:00$/m, '--time');
like($sb, qr/^#SBATCH --cpus-per-task=2$/m, '--cpus');
like($sb, qr/^#SBATCH --mem=1G$/m, '--mem');
like($sb, qr/^#SBATCH --chdir=\/.*\/s$/m, 'tasks start in the sweep directory');
like($sb, qr/^exec '[^']*achilles' sweep --run-index "\$SLURM_ARRAY_TASK_ID" '\/[^']*\/s'$/m,
     'task i runs achilles sweep --run-index i DIR, absolute paths');
is(system('bash', '-n', "$dir/s/sweep.sbatch"), 0, 'bash -n: the script parses');
($st, $out, $err) = run($ach, 'sweep', '--emit', 'slurm', "$dir/s", '--time', '1h; rm -rf /');
is($st, 2, 'a --time that is not a Slurm time: refused');

done_testing();
