#!/usr/bin/perl
# The Slurm path for real: a private single-node Slurm (munged, slurmctld,
# slurmd from Debian's packages, on their own socket, ports and state
# directory), a tiny sweep submitted with the script `achilles sweep --emit
# slurm` writes, every run finished exactly once; then submitted again,
# which must change nothing. Skips, with the reason, where the packages are
# missing or the daemons cannot start.
use strict;
use warnings;
use Test::More;
use JSON::PP;
use File::Temp qw(tempdir);
use IO::Socket::INET;
use Time::HiRes qw(sleep time);
use Cwd qw(getcwd);

my $ach = $ENV{ACHILLES_BIN} // './build/achilles';
$ach = getcwd() . "/$ach" unless $ach =~ m{^/};

sub have { system('sh', '-c', "command -v $_[0] >/dev/null 2>&1") == 0 }
my @missing = grep { !have($_) } qw(munged slurmctld slurmd sbatch squeue sinfo);
plan skip_all => "Slurm is not installed (missing @missing; Debian: slurmctld slurmd munge slurm-client)" if @missing;
plan skip_all => 'slurmd runs jobs as their user and needs root here' if $> != 0;

# a short path: munge's socket must fit in a sockaddr_un
my $d = tempdir('achslurmXXXX', TMPDIR => 1, CLEANUP => 1);
sub slurp { local $/; open my $f, '<:raw', $_[0] or return undef; my $x = <$f>; close $f; $x }
sub spit { open my $f, '>', $_[0] or die "$_[0]: $!"; print $f $_[1]; close $f }
sub free_port {
    for (1 .. 50) {
        my $p = 20000 + int(rand(20000));
        my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $p, Proto => 'tcp', ReuseAddr => 1) or next;
        my $s2 = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $p + 1, Proto => 'tcp', ReuseAddr => 1) or next;
        return $p;
    }
    return 0;
}
# the daemons we start, stopped by the pids they wrote, whatever happens
my @pidfiles;
sub alive {    # a daemon not yet exited (a zombie waiting for its reaper counts as gone)
    my $st = slurp("/proc/$_[0]/status") // return 0;
    return $st !~ /^State:\s+Z/m;
}
sub stop_daemons {
    my @pids;
    for my $pf (reverse @pidfiles) {
        my $pid = slurp($pf) // next;
        chomp $pid;
        next unless $pid =~ /^\d+$/;
        kill 'TERM', $pid;
        push @pids, $pid;
    }
    @pidfiles = ();
    # slurmctld saves its state on the way out: let it finish before the
    # temporary directory goes
    my $t0 = time;
    sleep 0.1 while grep({ alive($_) } @pids) && time - $t0 < 10;
}
END { stop_daemons() }
sub wait_for {    # polls $cond every 0.2 s for at most $secs
    my ($secs, $cond) = @_;
    my $t0 = time;
    while (time - $t0 < $secs) { return 1 if $cond->(); sleep 0.2 }
    return 0;
}
sub give_up {
    my ($why, @logs) = @_;
    my $tail = join(' | ', map { my $t = slurp($_) // ''; my @l = grep { /\S/ } split /\n/, $t; @l ? "$_: $l[-1]" : () } @logs);
    stop_daemons();
    plan skip_all => "$why" . ($tail ? " ($tail)" : '');
}

# --- munge --------------------------------------------------------------------
mkdir "$d/munge", 0700;
mkdir "$d/$_" for qw(state spool log);
open my $kf, '>:raw', "$d/munge/munge.key" or die;
print $kf join('', map { chr(int(rand(256))) } 1 .. 1024);
close $kf;
chmod 0400, "$d/munge/munge.key";
my $sock = "$d/munge/sock";
push @pidfiles, "$d/munge/munged.pid";
system('munged', '--force', "--socket=$sock", "--key-file=$d/munge/munge.key", "--log-file=$d/log/munged.log",
       "--pid-file=$d/munge/munged.pid", "--seed-file=$d/munge/seed");
wait_for(10, sub { -S $sock }) or give_up('munged did not start', "$d/log/munged.log");

# --- slurmctld and slurmd -------------------------------------------------------
my $host = `hostname -s`;
chomp $host;
my $cpus = `nproc`;
chomp $cpus;
my $port = free_port() or give_up('no free TCP ports for slurmctld and slurmd');
my $conf = "$d/slurm.conf";
spit($conf, <<"EOF");
ClusterName=achtest
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$port
SlurmdPort=@{[$port + 1]}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$sock
StateSaveLocation=$d/state
SlurmdSpoolDir=$d/spool
SlurmctldPidFile=$d/slurmctld.pid
SlurmdPidFile=$d/slurmd.pid
SlurmctldLogFile=$d/log/slurmctld.log
SlurmdLogFile=$d/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
ReturnToService=2
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=500 State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
$ENV{SLURM_CONF} = $conf;
push @pidfiles, "$d/slurmctld.pid";
system("slurmctld -c -f '$conf' >$d/log/ctld.out 2>&1");
push @pidfiles, "$d/slurmd.pid";
system("slurmd -f '$conf' -N '$host' >$d/log/slurmd.out 2>&1");
wait_for(30, sub { (`sinfo -h -o %T 2>/dev/null` // '') =~ /^idle/m })
    or give_up('the Slurm daemons did not come up', "$d/log/slurmctld.log", "$d/log/slurmd.log");
pass("a single-node Slurm is up ($host, $cpus CPUs, ports $port-@{[$port + 1]})");

# --- a tiny sweep through sbatch ----------------------------------------------------
my @tiny = ('preset=t/data/small.json', qw(d_model=16 d_state=8 headdim=8 batch_size=500 epochs=2));
my $sw = "$d/sweep";
my $out = `'$ach' sweep n_layer=2,3 seed=0,1 @tiny --out '$sw' --emit slurm --time 00:05:00 --cpus 1 --mem 200M 2>&1`;
is($?, 0, 'achilles sweep --emit slurm') or diag $out;
ok(-s "$sw/sweep.sbatch", 'the script is written');

sub submit_and_wait {
    my ($what) = @_;
    my $job = `sbatch --parsable '$sw/sweep.sbatch' 2>&1`;
    chomp $job;
    ok($job =~ /^(\d+)/, "$what: sbatch accepts the script (job $job)") or return;
    my $id = $1;
    ok(wait_for(120, sub { `squeue -h -j $id 2>/dev/null` !~ /\S/ }), "$what: every array task left the queue");
    return $id;
}
sub check_runs {
    my ($what) = @_;
    my $m = decode_json(slurp("$sw/manifest.json"));
    my @bad;
    for my $r (@{ $m->{runs} }) {
        my $rd = "$sw/$r->{dir}";
        my @ep = map { decode_json($_)->{epoch} } split /\n/, (slurp("$rd/metrics.jsonl") // '');
        my $s = decode_json(slurp("$rd/summary.json") // '{}');
        push @bad, "$r->{dir}: epochs @ep" unless "@ep" eq '0 1 2';
        push @bad, "$r->{dir}: not done" unless ($s->{status} // '') eq 'done';
        my $starts = () = (slurp("$rd/train.log") // '') =~ /== achilles sweep: starting/g;
        push @bad, "$r->{dir}: started $starts times" unless $starts == 1;
    }
    ok(!@bad, "$what: every run finished, each epoch recorded once, each run started once") or diag join("\n", @bad);
}

my $job = submit_and_wait('first submission');
check_runs('first submission');
my @logs = glob("$sw/slurm/${job}_*.out");
is(scalar @logs, 4, 'one Slurm log per array task');
like(slurp($logs[0]) // '', qr/run \d of 4: to run/, 'a task log says which run it ran');
my $st = `'$ach' sweep --status '$sw'`;
like($st, qr/4 runs: 4 done/, 'achilles sweep --status: all done');

$job = submit_and_wait('resubmission');
check_runs('resubmission');
like(join('', map { slurp($_) // '' } glob("$sw/slurm/${job}_*.out")), qr/already done/, 'resubmitted tasks find their runs done');
my $rc = system("'$ach' sweep '$sw' >/dev/null");
is($rc, 0, 'a local sweep of the same directory has nothing left to do');

stop_daemons();
done_testing();
