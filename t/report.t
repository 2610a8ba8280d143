#!/usr/bin/perl
# `achilles report`: our numbers beside the paper's. On the committed
# fixture (phase diagram), then on tiny real runs (all-one conv against
# standard, blocking records, substitution and cosine from the checkpoints),
# with valid SVG figures next to the report.
use strict;
use warnings;
use Test::More;
use File::Temp qw(tempdir);

my $ach = $ENV{ACHILLES_BIN} // './build/achilles';
my $dir = tempdir(CLEANUP => 1);
my $xmllint = system('sh', '-c', 'command -v xmllint >/dev/null') == 0;

sub slurp { local $/; open my $f, '<:raw', $_[0] or return undef; my $d = <$f>; close $f; $d }
sub run {
    my $cmd = join(' ', map { "'$_'" } @_) . " >$dir/out 2>$dir/err";
    system($cmd);
    return ($? >> 8, slurp("$dir/out") // '', slurp("$dir/err") // '');
}
sub valid_svg {
    my ($path, $what) = @_;
    ok(-s $path, "$what exists");
    SKIP: {
        skip 'xmllint not installed (Debian: libxml2-utils)', 1 unless $xmllint;
        is(system('xmllint', '--noout', $path), 0, "$what is well-formed XML");
    }
}

# --- the fixture: the phase section ---------------------------------------------
my ($st, $out, $err) = run($ach, 'report', 't/data/sweep-fixture', '--out', "$dir/fx/REPORT.md", '--no-analyses');
is($st, 0, 'report on the fixture') or diag $err;
my $r = slurp("$dir/fx/REPORT.md") // '';
like($r, qr/^# Achilles report/, 'a Markdown report');
like($r, qr/8 runs, 8 finished/, 'counts the runs');
like($r, qr/\*\*Verdict: reproduced\*\* \(1 of 1 reproduced, 0 partly\)\. Criterion: over the paper's cells, mean \|ours - paper\|/,
     'phase: a verdict with its criterion (the fixture matches the paper where it has cells)');
like($r, qr/## Phase diagram \(paper Fig\. 3\)/, 'a phase diagram section');
like($r, qr/^\| all \| 2 \| 1 \| 2 \| 0\.620 \(0\.600-0\.640\) \| 0\.61 \| 0\.380 \(0\.360-0\.400\) \| 0\.38 \|$/m,
     'L2 gamma 1: ours (mean, min-max) beside the paper, both answers');
like($r, qr/^\| all \| 3 \| 0\.5 \| 2 \| 0\.070 \(0\.060-0\.080\) \| 0\.07 \| 0\.110 \(0\.100-0\.120\) \| 0\.04-0\.13 \|$/m,
     "L3 gamma 0.5: the paper's symmetric range");
# |0.25-0.25| + |0.62-0.61| + |0.07-0.07| + |0.95-0.94| = 0.02; / 4 = 0.005
like($r, qr/mean \|ours - paper\| of the composite accuracy 0\.005 over 4 cells/, 'the distance to the paper');
like($r, qr/\]\(REPORT-phase\.svg\)/, 'links its figure');
valid_svg("$dir/fx/REPORT-phase.svg", 'the phase figure');
like($r, qr/sym ~0\.85 by epoch 25/, "the all-one section quotes the paper's numbers");
like($r, qr/No finished run here uses the all-one convolution/, 'and says there is no such run');
like($r, qr/pair 43 ~0\.994, every other pair 1\.00/, "the blocking section quotes the paper");
like($r, qr/Skipped \(--no-analyses\)/, '--no-analyses skips the model analyses');

# --- tiny real runs: all-one against standard, blocking, analyses -------------------
my @tiny = ('preset=t/data/small.json', qw(d_model=16 d_state=8 headdim=8 batch_size=500 threads=1 epochs=2 n_layer=2),
            'block=key,anchors');
($st, $out, $err) = run($ach, 'sweep', 'all_one_conv=off,on', @tiny, '--out', "$dir/sw", '--workers', 2);
is($st, 0, 'a sweep: all-one conv off and on') or diag "$out$err";
($st, $out, $err) = run($ach, 'train', '--quiet', '--out', "$dir/loose/pe", @tiny, 'pos_enc=sinusoidal');
is($st, 0, 'a loose run with positional encoding') or diag $err;
($st, $out, $err) = run($ach, 'report', "$dir/sw", "$dir/loose", '--out', "$dir/rep/R.md", '--per-pair', 10);
is($st, 0, 'report on a sweep and a directory of runs') or diag $err;
$r = slurp("$dir/rep/R.md") // '';
like($r, qr/3 runs, 3 finished/, 'finds the sweep runs and the loose one');
like($r, qr/^\| `sw\/runs\/0001-all_one_conv=on` \| 2 \| 0\.5 \| 0 \| all-one \| 2 \| \d\.\d{3} \| \d\.\d{3} \(\d\) \| – \| \d\.\d{3} \|$/m,
     'the all-one run: final, peak, sym at 25 (not reached), sym final');
like($r, qr/^\| `sw\/runs\/0000-all_one_conv=off` \| 2 \| 0\.5 \| 0 \| standard \|/m, 'beside its standard twin');
my ($sec) = $r =~ /(## All-one convolution against standard.*?)\n## /s;
like($sec, qr/\*\*Verdict: (reproduced|partly|not reproduced)\*\* \(\d of 1 reproduced, \d partly\)\. Criterion: at each run's last epoch, sym at least 0\.6/,
     'all-one: a verdict over its one pair, with the criterion');
like($sec, qr/^Protocol of `sw\/runs\/0001-all_one_conv=on`: the defaults of `achilles train` with preset=small\.json d_model=16 .*block=key,anchors\.$/m,
     'all-one: the protocol, the settings apart from the defaults');
like($r, qr/## Blocking.*?\*\*Verdict: [a-z ]+\*\* \(\d of 6 reproduced, \d partly\)\. Criterion: pair 43 unchanged/s,
     'blocking: a verdict over the three runs that block and the three measured on their states');
like($r, qr/^\| `sw\/runs\/0000-all_one_conv=off` \| 2 \| \d\.\d{3} \| \d\.\d{3}-\d\.\d{3} \| \d\.\d{3} \|$/m,
     'blocking measured on the state: epoch, pair 43, the other pairs, overall');
like($r, qr/## Substitution.*?\*\*Verdict: [a-z ]+\*\* \(\d of 3 reproduced, \d partly\)\. Criterion: every pair collapses/s,
     'substitution: a verdict');
like($r, qr/## Conv cosine similarity.*?\*\*Verdict: [a-z ]+\*\* \(\d of 2 reproduced, \d partly\)\. Criterion: the final off-diagonal/s,
     'cosine: a verdict over the standard runs only (all-one is 1 by construction)');
like($r, qr/\]\(R-all_one_conv\.svg\)/, 'links the all-one curves');
valid_svg("$dir/rep/R-all_one_conv.svg", 'the all-one figure');
like($r, qr/^\| `loose\/pe` \| 2 \| 0\.5 \| 0 \| sinusoidal \|/m, 'the positional-encoding run');
valid_svg("$dir/rep/R-pos_enc.svg", 'the positional-encoding figure');
like($r, qr/^\| `sw\/runs\/0000-all_one_conv=off` \| done \| key,anchors \| all \| \d\.\d{3} \| \d\.\d{3}-\d\.\d{3} \| \d\.\d{3} \|$/m,
     'blocking: pair 43, the other pairs and overall from the run records');
like($r, qr/0\.983-1\.0 for all 15 pairs/, "substitution: the paper's numbers");
like($r, qr/^\| `sw\/runs\/0001-all_one_conv=on` \| 15 \| \d\.\d{3} \| \d\.\d{3} \| \d\.\d{3} \| \d\.\d{3} \|$/m,
     'substitution: ours, computed from the checkpoint over 15 pairs, and the fraction unchanged');
like($r, qr/between -0\.11 and 0\.35/, "cosine: the paper's numbers");
like($r, qr/^\| `sw\/runs\/0000-all_one_conv=off` \| 2 \| 0\.5 \| -?\d\.\d\d to -?\d\.\d\d \| -?\d\.\d\d to -?\d\.\d\d \|$/m,
     'cosine: ours at epoch 0 and at the end');
like($r, qr/^\| `sw\/runs\/0001-all_one_conv=on` \| 2 \| 0\.5 \| .* \| 1\.00 to 1\.00 \|$/m, 'all-one conv: cosine 1 everywhere');
valid_svg("$dir/rep/R-phase.svg", 'the phase figure');
like($r, qr/^\| all_one_conv=on pos_enc=none \| 2 \| 0\.5 \| 1 \|/m, 'phase groups by the settings that differ');

# --- Fig. 4a: runs on the fully-symmetric preset, their pairs 34 and 43 --------------
(my $fs = slurp('data/fully-symmetric.json') // '') =~ s/"per_pair": 13500/"per_pair": 40/;
$fs =~ s/"per_pair": 1500/"per_pair": 10/;
open my $fsf, '>', "$dir/fully-symmetric-small.json" or die;
print $fsf $fs;
close $fsf;
($st, $out, $err) = run($ach, 'train', '--quiet', '--out', "$dir/fs/run", "preset=$dir/fully-symmetric-small.json",
                        qw(d_model=16 d_state=8 headdim=8 batch_size=200 threads=1 epochs=2 n_layer=2));
is($st, 0, 'a tiny run on the fully-symmetric preset') or diag $err;
my ($last) = grep { /\S/ } reverse split /\n/, (slurp("$dir/fs/run/metrics.jsonl") // '');
my %acc = map { my ($v) = $last =~ /"$_":([-\d.e]+)/; ($_ => sprintf('%.3f', $v // -1)) } qw(34 43 acc_seen);
($st, $out, $err) = run($ach, 'report', "$dir/fs", '--out', "$dir/fs/R.md", '--no-analyses');
is($st, 0, 'report on it') or diag $err;
$r = slurp("$dir/fs/R.md") // '';
like($r, qr/## Fully-symmetric task \(paper Fig\. 4a\).*pair 34 reaches 1\.0, pair 43 stays near 0/s, "Fig. 4a: the paper's result");
my ($a34, $a43, $aseen) = @acc{qw(34 43 acc_seen)};
ok(!grep({ $_ < 0 } $a34, $a43, $aseen), "the run records pairs 34 and 43");
like($r, qr/^\| `fs\/run` \| done \| 2 \| 16 \| 0\.5 \| 0 \| 2\/2 \| \Q$a34\E \| \Q$a43\E \| \Q$aseen\E \|$/m,
     'Fig. 4a: pairs 34 and 43 and the seen pairs from the last evaluation') or diag $r;
like($r, qr/## Fully-symmetric task.*?\*\*Verdict: [a-z ]+\*\* \(\d of 1 reproduced, \d partly\)\. Criterion: at each run's last evaluation, pair 34 at least 0\.9/s,
     'Fig. 4a: a verdict with its criterion');
like(slurp("$dir/rep/R.md") // '', qr/No run here uses the fully-symmetric preset/, 'and says so where there is none');

# --- the protocol search: runs held early, twins across the all-one keys, verdicts ----
my @search = ('preset=t/data/small.json', qw(d_model=16 d_state=8 headdim=8 batch_size=500 threads=1 epochs=40 n_layer=1));
($st, $out, $err) = run($ach, 'sweep', 'all_one_conv=off,on', @search, '--out', "$dir/search/a", '--workers', 2,
                        '--until-epoch', 10);
is($st, 0, 'search: a twin pair held at epoch 10') or diag "$out$err";
open my $spec, '>', "$dir/b.json" or die;
print $spec '{"name": "b", "base": {"all_one_mode": "trained"}, "grid": {"all_one_conv": ["on"]}}';
close $spec;
($st, $out, $err) = run($ach, 'sweep', "$dir/b.json", @search, '--out', "$dir/search/b", '--until-epoch', 10);
is($st, 0, 'search: an all-one variant alone') or diag "$out$err";
sub rec10 {    # comp and sym at epoch 10 from a run's metrics.jsonl, as the report prints them
    my ($m) = grep { /"epoch":10,/ } split /\n/, (slurp("$_[0]/metrics.jsonl") // '');
    my ($c) = $m =~ /"acc43_comp":([-\d.e]+)/;
    my ($s) = $m =~ /"acc43_sym":([-\d.e]+)/;
    return (sprintf('%.3f', $c), sprintf('%.3f', $s));
}
my ($sc, $ss) = rec10("$dir/search/a/runs/0000-all_one_conv=off");
my ($ac, $as) = rec10("$dir/search/a/runs/0001-all_one_conv=on");
my ($tc, $ts) = rec10("$dir/search/b/runs/0000-all_one_conv=on");
my $verdict = sub {
    my ($s, $c, $std) = @_;
    return 'reproduced' if $s >= 0.6 && $s > $c && $std <= 0.1;
    return 'partly' if $s >= 0.3 || $s - $std >= 0.2;
    return 'not';
};
($st, $out, $err) = run($ach, 'report', "$dir/search", '--out', "$dir/search/R.md", '--no-analyses');
is($st, 0, 'report on the search') or diag $err;
$r = slurp("$dir/search/R.md") // '';
like($r, qr/## All-one convolution: the protocol search/, 'a search section');
like($r, qr/reproduced: at the last epoch shown, the all-one run's sym is at least 0\.6/, 'it states its criterion');
my $v = $verdict->($as, $ac, $ss);
my $set = 'preset=small.json d_model=16 d_state=8 headdim=8 epochs=40 batch_size=500';    # what differs from the defaults
like($r, qr/^\| \Q$set\E \| 1 \| 0\.5 \| \Q$ac\E \/ – \/ – \| \Q$as\E \/ – \/ – \| \Q$sc\E \/ – \/ – \| \Q$ss\E \/ – \/ – \| $v \(epoch 10\) \| `search\/a\/runs\/0001-all_one_conv=on` \|$/m,
     "the held pair: epoch 10's values from the records, the verdict ($v) by the criterion") or diag $r;
$v = $verdict->($ts, $tc, $ss);
like($r, qr/^\| \Q$set\E all_one_mode=trained \| 1 \| 0\.5 \| \Q$tc\E \/ – \/ – \| \Q$ts\E \/ – \/ – \| \Q$sc\E \/ – \/ – \| \Q$ss\E \/ – \/ – \| $v \(epoch 10\) \|/m,
     'the variant alone: its standard twin is the other sweep\'s, whose settings differ only in all-one keys');
my $first = $r;
($st, $out, $err) = run($ach, 'report', "$dir/search", '--out', "$dir/search/R.md", '--no-analyses');
is(slurp("$dir/search/R.md"), $first, 'the same runs give the same report, byte for byte');

# what the report measured on a model state is kept beside the run (analyses.json)
my @measured = grep { -s "$dir/sw/runs/$_/analyses.json" } qw(0000-all_one_conv=off 0001-all_one_conv=on);
is(scalar @measured, 2, 'the report saved analyses.json in each finished sweep run');
my $aj = slurp("$dir/sw/runs/0000-all_one_conv=off/analyses.json") // '';
like($aj, qr/"per_pair":\s*10,/, 'with the per-pair count it was measured with');
sub measured_rows {    # the rows measured on model states: blocking's second table, substitution, cosine
    my ($text) = $_[0] =~ /(## Blocking.*?)\n## Runs/s;    # the sweep's runs (the first report had a loose one)
    return join("\n", grep { /^\| `sw\// && !/ \| done \| / } split /\n/, $text // '');
}
my $from_states = measured_rows(slurp("$dir/rep/R.md") // "");
is(scalar(() = $from_states =~ /^\|/mg), 6, 'six rows measured on the states: blocking, substitution, cosine');

# summaries kept without their models (results/): the same rows, read from analyses.json
system('cp', '-r', "$dir/sw", "$dir/kept");
unlink glob("$dir/kept/runs/*/state.safetensors");
my $before = slurp("$dir/kept/runs/0000-all_one_conv=off/analyses.json");
($st, $out, $err) = run($ach, 'report', "$dir/kept", '--out', "$dir/kept/R.md", '--per-pair', 10);
is($st, 0, 'report on runs without their model states') or diag $err;
$r = slurp("$dir/kept/R.md") // '';
is(measured_rows($r), $from_states, 'their blocking, substitution and cosine rows come back unchanged');
is(slurp("$dir/kept/runs/0000-all_one_conv=off/analyses.json"), $before, 'analyses.json is left as it was');
unlike($r, qr/cannot load/, 'no row says it cannot load');
($st, $out, $err) = run($ach, 'report', "$dir/kept", '--out', "$dir/kept/R.md");
like(slurp("$dir/kept/R.md") // '', qr/## Substitution.*\(no finished run with its model state or an analyses\.json here\)/s,
     'measured with another per-pair count: left out, not mixed in');
unlink glob("$dir/kept/runs/*/analyses.json");
($st, $out, $err) = run($ach, 'report', "$dir/kept", '--out', "$dir/kept/R.md", '--per-pair', 10);
is($st, 0, 'neither state nor analyses.json: still a report');
like(slurp("$dir/kept/R.md") // '', qr/## Substitution.*\(no finished run with its model state or an analyses\.json here\)/s,
     'substitution leaves them out');
open my $bad, '>', "$dir/kept/runs/0000-all_one_conv=off/analyses.json" or die;
print $bad '{"per_pair": 10}';
close $bad;
($st, $out, $err) = run($ach, 'report', "$dir/kept", '--out', "$dir/kept/R.md", '--per-pair', 10);
is($st, 1, 'a broken analyses.json: exit 1');
like($err, qr/0000-all_one_conv=off\/analyses\.json: not an analyses file/, 'naming the file and what it lacks');

($st, $out, $err) = run($ach, 'report', "$dir/nowhere");
is($st, 1, 'a missing directory: exit 1');
like($err, qr/nowhere/, 'and names it');
($st, $out, $err) = run($ach, 'report');
is($st, 2, 'no directory: bad usage');

done_testing();
