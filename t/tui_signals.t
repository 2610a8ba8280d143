#!/usr/bin/perl
# Signals to the running workbench, in tmux. SIGHUP and SIGTERM save the
# session and exit; SIGSEGV and SIGABRT (a crash) die of the signal. After
# each the terminal is given back: its modes as before (stty -g; icanon and
# echo on), the main screen, the cursor shown, the keypad off; and the
# session on disk loads with the workbench's loader.
use strict;
use warnings;
use Test::More;
use Cwd qw(abs_path);
use Config;
use File::Temp qw(tempdir);
use Time::HiRes qw(stat);

use FindBin;
use lib $FindBin::Bin;
use TuiTmux;

if (!have_tmux()) {
    print "1..0 # SKIP tmux not installed\n";
    exit 0;
}
my $bin = abs_path($ENV{ACHILLES_TUI_BIN} // 'build/achilles-tui');
my $check = abs_path('build/t/tui_snapshots');
my $small = abs_path('t/data/small.json') . ' n_layer=1 d_model=16 d_state=8 headdim=8 batch_size=100';
my $dir = tempdir(CLEANUP => 1);
my $utf8 = 'LANG=C.UTF-8 LC_ALL=C.UTF-8';
my %signo;
@signo{split ' ', $Config{sig_name}} = split ' ', $Config{sig_num};
# printed in the pane once achilles-tui has exited
my $after = "echo TTY=\$([ \"\$(stty -g)\" = \"\$(cat '$dir/stty')\" ] && echo same || echo changed) "
    . "MODES=\$(stty -a | tr ' ;' '\\n\\n' | grep -xE -- '-?(icanon|echo|isig)' | tr '\\n' ,)";

tmux_start($dir, $bin, 100, 30);
start($utf8, 'sig', $after);
wait_for(qr/achilles>/, 20);
type("new $small epochs=100000 name=tiny");
ok(wait_for(qr/1 tiny\s+running/, 60), 'a session with a running run');
key('F10');
ok(wait_for(qr/EXIT=0/, 30), 'quit');

my $sj = "$dir/sessions/sig/session.json";
for my $sig (qw(HUP TERM SEGV ABRT)) {
    start($utf8, 'sig', $after);
    ok(wait_for(qr/1 tiny\s+running.*achilles>/s, 30), "$sig: the workbench is up, the run training");
    my $pid = slurp("$dir/pid") // 0;
    chomp $pid;
    my $mtime = (stat $sj)[9];
    ok($pid > 1 && kill($sig, $pid), "SIG$sig sent");
    my $s = wait_for(qr/EXIT=\d+.*\n.*TTY=\w+ MODES=\S+/, 30);
    my ($code) = $s =~ /EXIT=(\d+)/;
    is($code, 128 + $signo{$sig}, "SIG$sig: exit status 128 + $signo{$sig}");
    ok(!kill(0, $pid), 'the process is gone');
    like($s, qr/TTY=same/, 'the terminal modes are as before');
    like($s, qr/MODES=isig,icanon,echo,/, 'icanon, isig and echo are on') or diag($s);
    is(pane_flags(), '0 1 0', 'the main screen, the cursor shown, the keypad off');
    if ($sig eq 'HUP' || $sig eq 'TERM') {
        ok((stat $sj)[9] > $mtime, 'session.json was saved');
    } else {
        unlike($s, qr/session .* saved/, 'a crash saves nothing');
    }
    my $out = `'$check' check '$dir/sessions/sig' 2>&1`;
    is($?, 0, 'the session loads and its runs resume') or diag($out);
}
done_testing();
