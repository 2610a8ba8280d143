#!/usr/bin/perl
# The real achilles-tui in tmux: a fresh session, commands typed at the
# prompt, a run's curves moving, a live switch of the all-one conv in the
# run's record, resizes (80x24 folds the heatmap, smaller says what it
# needs), F1 and help in the overlay, long log lines wrapped, save, quit, a
# restart with the same history, LANG=C in ASCII, and SIGTERM / SIGHUP
# saving the session.
use strict;
use warnings;
use Test::More;
use Cwd qw(abs_path getcwd);
use File::Temp qw(tempdir);
use JSON::PP;
use Time::HiRes qw(sleep time);

use FindBin;
use lib $FindBin::Bin;
use TuiTmux;

if (!have_tmux()) {
    print "1..0 # SKIP tmux not installed\n";
    exit 0;
}
my $repo = getcwd();
$repo = abs_path("$repo/..") if !-d "$repo/t";
chdir $repo or die;
my $bin = abs_path($ENV{ACHILLES_TUI_BIN} // 'build/achilles-tui');
my $dir = tempdir(CLEANUP => 1);

my $small = "$repo/t/data/small.json n_layer=2 d_state=16 headdim=16 lr_max=1e-2 lr_min=1e-4 warmup_epochs=1 batch_size=500";

sub last_record {
    my $m = slurp("$dir/sessions/$_[0]/runs/$_[1]/metrics.jsonl") // return {};
    my @l = split /\n/, $m;
    return decode_json($l[-1]);
}

tmux_start($dir, $bin, 100, 30);
my $utf8 = 'LANG=C.UTF-8 LC_ALL=C.UTF-8';

# --- a fresh session, a run, moving curves -----------------------------------
start($utf8, 'fresh');
my $s = wait_for(qr/achilles>/, 20);
like($s, qr/session fresh/, 'status line names the session');
like($s, qr/new session 'fresh'/, 'the log says the session is new');
like($s, qr/F1.*help.*F10.*quit/, 'the keys bar');
type("new $small epochs=5000 name=tiny");
$s = wait_for(qr/1 tiny\s+running/, 60);
ok($s, 'new: the run is created and starts');
$s = wait_for(qr/ep [1-9]\d*\/5000/, 60);
ok($s, 'an epoch goes by (status line)');
my $scr = screen();
my $a = rows($scr, 1, 15);
my ($ep_a) = $scr =~ /ep (\d+)\/5000/;
$ep_a //= 0;
# two epochs later
my $t1 = time;
$scr = screen();
while (time - $t1 < 60) {
    my ($e) = $scr =~ /ep (\d+)\/5000/;
    last if defined $e && $e >= $ep_a + 2;
    sleep 0.2;
    $scr = screen();
}
my $b = rows($scr, 1, 15);
isnt($a, $b, 'the curve panes change as the run trains');
like($b, qr/\xe2[\xa0-\xa3]/, 'braille curves in a UTF-8 locale');
like($b, qr/loss .*1 tiny/, 'the loss pane, with the run in its title');
like($b, qr/pair 43 accuracy/, 'the accuracy pane');
like($b, qr/train .* test /, 'a legend');
like($b, qr/epoch/, 'an x axis label');

# --- the all-one conv, switched on the live run -------------------------------
type('all_one_conv on');
$s = wait_for(qr/all_one_conv on from epoch \d+/, 30);
ok($s, 'all_one_conv on: applied at a step boundary');
my ($e_on) = $s =~ /all_one_conv on from epoch (\d+)/;
my $t0 = time;
my $rec = {};
while (time - $t0 < 30) {
    $rec = last_record('fresh', 1);
    last if defined $e_on && ($rec->{epoch} // 0) > $e_on;
    sleep 0.3;
}
ok($rec->{all_one_conv}, "the run's next record has all_one_conv on (epoch " . ($rec->{epoch} // '?') . ")");
like(slurp("$dir/sessions/fresh/runs/1/interventions.jsonl") // '', qr/"key":"all_one_conv","value":"on"/,
     'interventions.jsonl has the switch');
ok(wait_for(qr/all-one/, 10), 'the status line shows it');

# --- heatmap, help ---------------------------------------------------------
type('heatmap');
# the pane comes at once; the matrix (and its log line) at the run's next step
# boundary: wait for both, or the resizes below race with its arrival (a
# heatmap that arrives on a narrow screen takes the runs' place)
$s = wait_for(qr/conv cosine, layer 0: off-diagonal/, 30);
$s = wait_for(qr/conv cos-sim\s+run 1 layer 0/, 30);
ok($s, 'heatmap: the conv cosine pane at 100x30');
like($s, qr/epoch 0 .* epoch \d+/, 'epoch 0 beside now');
key('F1');
$s = wait_for(qr/q closes/, 10);
ok($s, 'F1 shows the help overlay');
like($s, qr/'paper'/, 'which names the paper preset');
key('Escape');
$s = wait_until(sub { $_[0] !~ /q closes/ }, 10);
like($s, qr/pair 43 accuracy/, 'Esc closes it');
key('F1');
wait_for(qr/q closes/, 10);
key('x');
$s = wait_until(sub { $_[0] !~ /q closes/ }, 10);
like($s, qr/achilles> x/, 'another key closes it and goes to the prompt');
key('C-c');

# --- resizes ------------------------------------------------------------------
system(@tmux, 'resize-window', '-t', 't', '-x', 80, '-y', 24);
# the redrawn screen: 24 lines, the last the keys bar, the first the status line,
# the runs pane boxed within 80 columns (tmux shows the old screen cropped until
# the workbench redraws)
$s = wait_until(sub { my @l = split /\n/, $_[0]; @l >= 23 && $l[0] =~ /achilles/ && $_[0] =~ /F10/ && $_[0] =~ /achilles>/
                      && $_[0] =~ /pair 43/ && $_[0] =~ /^\xe2\x94\x8c runs [^\n]*\xe2\x94\x90 *$/m }, 10);
my @l = split /\n/, $s;
ok(@l <= 24 && !grep({ length($_) > 80 * 3 } @l), '80x24: the screen fits');
like($s, qr/loss/, '80x24: the curves are there') or diag($s);
like($s, qr/pair 43/, '80x24: both of them');
like($s, qr/1 tiny/, '80x24: the run list is there');
unlike($s, qr/conv cos-sim/, '80x24: the heatmap pane folds away');
like($s, qr/achilles>/, '80x24: the prompt');

# --- help at 80x24: the overlay, paged, every command line whole ------------
# The overlay's rows by number, from each page's "FIRST-LAST of N" footer.
sub overlay_rows {
    my ($scr, $rows) = @_;
    my ($first, $last, $n) = $scr =~ /(\d+)-(\d+) of (\d+)/ or return 0;
    my @l = split /\n/, $scr;
    my ($top) = grep { $l[$_] =~ /^\xe2\x94\x8c help / } 0 .. $#l;
    return 0 if !defined $top;
    for my $i (0 .. $last - $first) {
        my $row = $l[$top + 1 + $i] // '';
        $row =~ s/^\xe2\x94\x82 ?//;
        $row =~ s/ *\xe2\x94\x82 *$//;
        $rows->[$first - 1 + $i] = $row;
    }
    return $last == $n;
}
type('help');
$s = wait_for(qr/1-\d+ of \d+ .*q closes/, 10);
ok($s, 'help at 80x24: the overlay, saying which rows it shows');
my @help;
my $end = overlay_rows($s, \@help);
# one key at a time: the next when the footer shows this one's page
for (1 .. 20) {
    last if $end;
    my ($was) = screen() =~ / (\d+)-\d+ of /;
    key('NPage');
    $s = wait_until(sub { my ($f) = $_[0] =~ / (\d+)-\d+ of /; defined $f && $f != $was }, 5);
    $end = overlay_rows($s, \@help);
}
ok($end, 'PgDn pages to its end (' . scalar(@help) . ' rows)');
ok(!grep({ !defined } @help), 'and no row was skipped') or diag(join("\n", map { $_ // '(missing)' } @help));
(my $help = join(' ', @help)) =~ s/\s+/ /g;
for my $c (split /\n/, `'$bin' --list-commands`) {
    my ($name, $args) = split /\t/, $c;
    (my $syn = "$name $args") =~ s/\s+$//;
    ok(index($help, " $syn ") >= 0, "the overlay has '$syn' whole");
}
like($help, qr/ a new run from a task preset \(demo: the reduced demo\) or a copy of a run's settings /,
     'a help text longer than the row, whole');
ok(length($help) > 2000, 'a text several pages long (' . length($help) . ' bytes)');
key('Home');
ok(wait_for(qr/ 1-\d+ of \d+/, 5), 'Home goes back to the top');
key('Down');
ok(wait_for(qr/ 2-\d+ of \d+/, 5), 'Down: one row on');
key('End');
$s = wait_for(qr/ \d+-(\d+) of \1 /, 5);
my ($last_first) = $s =~ / (\d+)-\d+ of /;
ok($s && $last_first > 2, 'End: the last page');
key('Up');
ok(wait_for(qr/ @{[$last_first - 1]}-\d+ of /, 5), 'Up: one row back');
key('q');
$s = wait_until(sub { $_[0] !~ /q closes/ }, 10);
like($s, qr/pair 43 accuracy/, 'q closes it: the curves are back');
type('help eval');
# the overlay's text itself: the typed line alone shows 'help eval' at once
$s = wait_for(qr/eval block \[RUN\]/, 20);
like($s, qr/eval block \[RUN\]/, 'help eval: its usage in the overlay');
key('q');
wait_until(sub { $_[0] !~ /q closes/ }, 10);

# --- a log line wider than the pane wraps, and PgUp scrolls by rows ---------
# (at 80x24 the log is rows 19 to 21)
my @w = map { sprintf 'w%02d', $_ } 1 .. 30;
type("nosuch @w");
$s = wait_for(qr/unknown command 'nosuch'/, 10);
my @log = split /\n/, rows($s, 19, 21);
like($log[0], qr/^ \[\d\d:\d\d:\d\d\] > nosuch w01 .* w\d\d$/, 'a long log line: its first row');
like($log[1], qr/^ {14}w\d\d( w\d\d)* w30$/, 'then the rest, indented under its text');
my $logtext = join(' ', @log[0, 1]);
ok(join(' ', $logtext =~ /\b(w\d\d)\b/g) eq "@w", 'every word, in order: nothing cut');
key('PPage');
$s = wait_for(qr/\[log -2, PgDn\]/, 5);
@log = split /\n/, rows($s, 19, 21);
like($log[2], qr/> nosuch w01/, 'PgUp: back by rows, the long line\'s first row at the bottom');
unlike($s, qr/w30/, 'its second row below the pane');
key('NPage');
$s = wait_until(sub { $_[0] !~ /\[log -/ }, 5);
like($s, qr/w30/, 'PgDn: back at the newest');
key('F3');
$s = wait_for(qr/conv cos-sim/, 10);
ok($s, '80x24: F3 brings the heatmap in');
key('F3');
wait_for(qr/1 tiny/, 10);
system(@tmux, 'resize-window', '-t', 't', '-x', 60, '-y', 20);
$s = wait_for(qr/needs at least 80x24/, 10);
ok($s, '60x20: says what it needs');
like($s, qr/60x20/, 'and what it has');
system(@tmux, 'resize-window', '-t', 't', '-x', 120, '-y', 40);
$s = wait_for(qr/conv cos-sim/, 10);
ok($s, '120x40: the heatmap is back');
system(@tmux, 'resize-window', '-t', 't', '-x', 100, '-y', 30);
$s = wait_for(qr/conv cos-sim/, 10);
ok($s, 'back to 100x30');
ok(scalar(split /\n/, $s) <= 30, '100x30: fits');
# F3 right behind a resize (one tmux command: both in one pass of the workbench's
# input queue, before it redraws) toggles by the new size
system(@tmux, 'resize-window', '-t', 't', '-x', 80, '-y', 24, ';', 'send-keys', '-t', 't', 'F3');
$s = wait_until(sub { $_[0] =~ /conv cos-sim/ && $_[0] =~ /^\xe2\x94\x8c conv cos-sim[^\n]*\xe2\x94\x90 *$/m }, 10);
ok($s, 'F3 right after a resize to 80x24: the heatmap in the runs\' place');
key('F3');
system(@tmux, 'resize-window', '-t', 't', '-x', 100, '-y', 30);
ok(wait_for(qr/conv cos-sim/, 10), 'and at 100x30 again beside them');

# --- pause, save, quit, restart: the same history ---------------------------
type('pause');
$s = wait_for(qr/run 1 holds at epoch \d+/, 30);
ok($s, 'pause: the run holds at a step boundary');
sleep 1;
my $before = rows(screen(), 1, 15);
my ($ep_before) = screen() =~ /ep (\d+)\/5000/;
type('save');
ok(wait_for(qr/session saved to sessions\/fresh/, 20), 'save');
key('F10');
$s = wait_for(qr/EXIT=0/, 30);
ok($s, 'F10 quits: exit status 0');
like($s, qr/session 'fresh' saved in sessions\/fresh/, 'and it says where the session is');
my $sj = decode_json(slurp("$dir/sessions/fresh/session.json") // '{}');
is($sj->{runs}[0]{state}, 'paused', 'session.json: the run is paused');
ok(-s "$dir/state/achilles/history", 'the prompt history is kept under XDG_STATE_HOME');
start($utf8, 'fresh');
$s = wait_for(qr/session 'fresh' loaded/, 20);
ok($s, 'restarted from the snapshot');
$s = wait_for(qr/1 tiny\s+paused/, 10);
my ($ep_after) = $s =~ /ep (\d+)\/5000/;
is($ep_after, $ep_before, "the same epoch ($ep_before)");
is(rows($s, 1, 15), $before, 'the same curves, drawn from the saved history');
key('Up');
$s = wait_for(qr/achilles> save/, 5);
ok($s, 'Up recalls the last session\'s command');
key('C-c');
type('resume');
ok(wait_for(qr/1 tiny\s+running/, 20), 'resume: it trains again');
key('q');
ok(wait_for(qr/EXIT=0/, 30), 'q on an empty prompt quits');

# --- LANG=C: ASCII ------------------------------------------------------------
start('LANG=C LC_ALL=C', 'fresh');
$s = wait_for(qr/1 tiny\s+running/, 20);
$s = wait_for(qr/ep \d+\/5000/, 20);
sleep 1.5;
$s = screen();
unlike($s, qr/\xe2[\xa0-\xa3]/, 'LANG=C: no braille bytes');
like(rows($s, 2, 14), qr/[*.]{3}/, 'LANG=C: ASCII curves');
like($s, qr/ \| run 1\/1/, 'LANG=C: ASCII separators');
key('F1');
$s = wait_for(qr/q closes/, 10);
like($s, qr/ of \d+  Up\/Down PgUp\/PgDn  q closes /, 'LANG=C: the help overlay says its keys in ASCII');
unlike($s, qr/[\x80-\xff]/, 'LANG=C: and the screen has no byte beyond ASCII');
key('q');
type('quit');
ok(wait_for(qr/EXIT=0/, 30), 'quit');
start("$utf8", '-U fresh');
$s = wait_for(qr/ep \d+\/5000/, 20);
sleep 1;
unlike(screen(), qr/\xe2[\xa0-\xa3]/, '-U: no braille in a UTF-8 locale either');

# --- SIGTERM and SIGHUP save the session -----------------------------------
my $mtime = (stat "$dir/sessions/fresh/session.json")[9];
sleep 1.1;
my $pid = slurp("$dir/pid") // 0;
chomp $pid;
ok($pid > 1 && kill('TERM', $pid), 'SIGTERM sent');
$s = wait_for(qr/EXIT=\d+/, 30);
my ($code) = $s =~ /EXIT=(\d+)/;
is($code, 143, 'exit status 128 + SIGTERM');
ok((stat "$dir/sessions/fresh/session.json")[9] > $mtime, 'session.json was saved');
$sj = decode_json(slurp("$dir/sessions/fresh/session.json") // '{}');
is($sj->{runs}[0]{state}, 'running', 'with the run as it was: running');
start($utf8, 'fresh');
$s = wait_for(qr/1 tiny\s+running/, 20);
ok($s, 'after SIGTERM it reloads and trains on');
$mtime = (stat "$dir/sessions/fresh/session.json")[9];
sleep 1.1;
$pid = slurp("$dir/pid") // 0;
chomp $pid;
ok($pid > 1 && kill('HUP', $pid), 'SIGHUP sent (the SSH link dropped)');
$s = wait_for(qr/EXIT=\d+/, 30);
($code) = $s =~ /EXIT=(\d+)/;
is($code, 129, 'exit status 128 + SIGHUP');
ok((stat "$dir/sessions/fresh/session.json")[9] > $mtime, 'session.json was saved');

done_testing();
