#!/usr/bin/perl
# deps/install: which packages each stage wants, and what it does when some
# are missing: apt-get as root, sudo apt-get otherwise, or one line naming
# the command when neither can run. dpkg-query, id, sudo and apt-get are
# stand-ins on PATH that record what they were asked.
use strict;
use warnings;
use Test::More;
use File::Temp qw(tempdir);

my $dir = tempdir(CLEANUP => 1);
sub slurp { local $/; open my $f, '<', $_[0] or return ''; my $d = <$f>; close $f; $d }
sub stub {
    my ($name, $body) = @_;
    open my $f, '>', "$dir/bin/$name" or die;
    print $f "#!/bin/sh\n$body\n";
    close $f;
    chmod 0755, "$dir/bin/$name";
}
mkdir "$dir/bin";
# installed: whatever is listed in $dir/installed
stub('dpkg-query', 'p=""; for a; do p=$a; done; grep -qx "$p" ' . "$dir/installed" . ' && printf installed || printf not-installed');
stub('apt-get', 'echo "apt-get $*" >> ' . "$dir/log");
stub('sudo', 'echo "sudo $*" >> ' . "$dir/log" . '; "$@"');
stub('id', 'echo $FAKE_UID');

my @list = map { [split] } grep { /^\w/ } split /\n/, slurp('deps/debian-packages');
my %stage = map { $_->[1] => $_->[0] } @list;
my @build = grep { $stage{$_} eq 'build' } sort keys %stage;
my @test = grep { $stage{$_} eq 'test' } sort keys %stage;
ok(@build >= 4 && grep({ $_ eq 'libcjson-dev' } @build) && grep({ $_ eq 'pkg-config' } @build),
   'the build stage lists the build\'s libraries and pkg-config');
ok(grep({ $_ eq 'tmux' } @test) && grep({ $_ eq 'perl' } @test), 'the test stage lists the tests\' tools');
my $ci = slurp('.ci/run');
like($ci, qr{deps/install ci}, '.ci/run installs from the same list');
unlike($ci, qr{apt-get install}, '.ci/run has no list of its own');

sub run_install {    # (exit status, stdout+stderr, apt log)
    my ($stage, $uid, $installed, $path) = @_;
    open my $f, '>', "$dir/installed" or die;
    print $f "$_\n" for @$installed;
    close $f;
    unlink "$dir/log";
    my $out = `FAKE_UID=$uid PATH='$path' sh deps/install $stage 2>&1`;
    return ($? >> 8, $out, slurp("$dir/log"));
}
my $path = "$dir/bin:/usr/bin:/bin";
# /usr/bin may hold a real sudo: a PATH of our stubs and the shell's tools only
mkdir "$dir/nosudo";
for my $tool (qw(sh awk grep cat dirname printf)) {
    my $real = `sh -c "command -v $tool"`;
    chomp $real;
    symlink $real, "$dir/nosudo/$tool" if $real;
}
symlink "$dir/bin/$_", "$dir/nosudo/$_" for qw(dpkg-query apt-get id);

my ($st, $out, $log) = run_install('build', 0, [keys %stage], $path);
is($st, 0, 'nothing missing: exit 0');
is($out, '', 'nothing missing: silent');
is($log, '', 'nothing missing: no apt-get');

($st, $out, $log) = run_install('build', 0, [grep { $_ ne 'libcjson-dev' && $_ ne 'pkg-config' } keys %stage], $path);
is($st, 0, 'root, two missing: exit 0');
like($log, qr/^apt-get update/m, 'root: the package lists first');
like($log, qr/^apt-get install -y -q --no-install-recommends pkg-config libcjson-dev$/m,
     'root: apt-get installs exactly the missing build packages') or diag $log;
like($out, qr/installing what the build needs: pkg-config libcjson-dev/, 'and says so');

($st, $out, $log) = run_install('build', 0, [grep { $_ ne 'tmux' } keys %stage], $path);
is($log, '', 'a missing test package is not the build\'s business');
($st, $out, $log) = run_install('test', 0, [grep { $_ ne 'tmux' } keys %stage], $path);
like($log, qr/install -y -q --no-install-recommends tmux$/m, 'the test stage installs it');
($st, $out, $log) = run_install('test', 0, [grep { $stage{$_} ne 'ci' } keys %stage], $path);
is($log, '', 'the test stage leaves the ci packages (Slurm) alone');

($st, $out, $log) = run_install('build', 1000, [grep { $_ ne 'libreadline-dev' } keys %stage], $path);
is($st, 0, 'not root, sudo there: exit 0');
like($log, qr/^sudo apt-get install -y -q --no-install-recommends libreadline-dev$/m, 'through sudo') or diag $log;

($st, $out, $log) = run_install('build', 1000, [grep { $_ ne 'libreadline-dev' } keys %stage], "$dir/nosudo");
is($st, 1, 'not root, no sudo: exit 1');
is($log, '', 'installs nothing');
my @lines = split /\n/, $out;
is(scalar @lines, 1, 'one line') or diag $out;
like($out, qr/as root, run: apt-get update && apt-get install -y --no-install-recommends libreadline-dev$/,
     'naming the exact command');

($st, $out) = run_install('nonsense', 0, [], $path);
is($st, 2, 'an unknown stage: exit 2');
like($out, qr/unknown stage 'nonsense'/, 'and says so');
done_testing();
