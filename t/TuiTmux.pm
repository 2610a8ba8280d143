# achilles-tui in a private tmux server, for the tests that drive the real
# workbench (t/tui_tmux.t, t/tui_signals.t, the session in t/valgrind.pl):
#   tmux_start($dir, $bin, $cols, $rows)   the server, one pane 't'
#   start($env, $args, $after)             (re)runs achilles-tui in it
#   screen, rows, wait_for, wait_until, type, key, slurp, pane_flags
# When it exits the pane shows EXIT=<status>, then the output of $after.
package TuiTmux;
use strict;
use warnings;
use Exporter 'import';
use File::Temp (); # loaded first, so its cleanup runs after the END below
use Time::HiRes qw(sleep time);
use Test::More;

our @EXPORT = qw(@tmux have_tmux tmux_start start screen rows wait_for wait_until type key slurp pane_flags);
our @tmux;
my ($dir, $bin);

sub have_tmux { return grep { -x "$_/tmux" } split /:/, $ENV{PATH} }

sub tmux_start {
    ($dir, $bin, my ($cols, $rows)) = @_;
    @tmux = ('tmux', '-L', "achilles-test-$$", '-f', '/dev/null');
    system(@tmux, 'new-session', '-d', '-s', 't', '-x', $cols, '-y', $rows, 'sleep 600') == 0
        or die "tmux new-session failed";
    system(@tmux, 'set-option', '-t', 't', 'remain-on-exit', 'on');
}
END { system(@tmux, 'kill-server') if @tmux; }

sub slurp { local $/; open my $f, '<:raw', $_[0] or return undef; my $d = <$f>; close $f; $d }
sub screen { my $s = `@tmux capture-pane -p -t t 2>/dev/null`; return $s // '' }
sub rows { my ($s, $from, $to) = @_; my @l = split /\n/, $s, -1; return join("\n", @l[$from .. $to]) }
# "alternate_on cursor_flag keypad_flag" of the pane, e.g. "0 1 0"
sub pane_flags { my $f = `@tmux display-message -p -t t '#{alternate_on} #{cursor_flag} #{keypad_flag}'`; chomp $f; $f }

# waits until the screen matches; returns the screen (or '' on timeout)
sub wait_for {
    my ($re, $secs) = @_;
    my $t0 = time;
    while (time - $t0 < ($secs // 30)) {
        my $s = screen();
        return $s if $s =~ $re;
        sleep 0.2;
    }
    diag("timed out waiting for $re; the screen:\n" . screen());
    return '';
}
# waits until a test on the screen holds; returns the screen (or the last one)
sub wait_until {
    my ($test, $secs) = @_;
    my $t0 = time;
    my $s = screen();
    while (time - $t0 < ($secs // 30)) {
        return $s if $test->($s);
        sleep 0.2;
        $s = screen();
    }
    return $s;
}
sub type { my ($text) = @_; system(@tmux, 'send-keys', '-t', 't', '-l', $text); system(@tmux, 'send-keys', '-t', 't', 'Enter') }
sub key { system(@tmux, 'send-keys', '-t', 't', @_) }
# starts achilles-tui in the pane (replacing what ran there), in $dir with
# HOME there; $dir/pid gets its pid, $dir/stty the terminal's modes before
# (stty -g). $env is VAR=value ... and may end in a command to run it under
# (valgrind ...). Crashes leave no core file.
sub start {
    my ($env, $args, $after) = @_;
    open my $f, '>', "$dir/run.sh" or die;
    print $f "cd '$dir' && echo \$\$ > '$dir/pid' && stty -g > '$dir/stty' && ulimit -c 0 && "
        . "exec env HOME='$dir' XDG_STATE_HOME='$dir/state' "
        . "ACHILLES_THREADS=1 $env '$bin' $args\n";
    close $f;
    unlink "$dir/pid";
    system(@tmux, 'respawn-pane', '-k', '-t', 't', "sh '$dir/run.sh'; echo EXIT=\$?; " . ($after ? "$after; " : '') . 'sleep 600') == 0
        or die "respawn-pane failed";
}
1;
