#!/usr/bin/perl
# The tree cites only documents it holds: no SPEC.md or DESIGN.md (they
# live outside the repository, in ../shared), and every "docs/science.md §N"
# (or §N.M, or the man page's \(scN) names a section docs/science.md has.
use strict;
use warnings;
use Test::More;
use File::Find;
use FindBin;

chdir "$FindBin::Bin/.." or die "cd: $!";
binmode(Test::More->builder->$_, ':encoding(UTF-8)') for qw(output failure_output todo_output);
my @roots = grep { -e } qw(src ui cuda man README data bench docs fuzz t Makefile);
my @files;
find({ no_chdir => 1, wanted => sub { push @files, $File::Find::name if -f } }, @roots);
@files = sort grep { $_ ne 't/docs.t' } @files;

sub text_of {
    open my $f, '<:raw', $_[0] or return undef;
    my $d = do { local $/; <$f> };
    close $f;
    return undef if !defined $d || $d =~ /\0/; # binary: fixtures, fuzz inputs
    utf8::decode($d);
    return $d;
}

# The outside documents, in the ways the tree used to cite them, and the
# directory beside the checkout they live in.
my $outside = qr{\bSPEC(?:\.md\b|\s*(?:\x{a7}|\\\(sc)|\s+section\b|'s\b|\s+(?:is|does|says)\b)|\bDESIGN(?:\.md\b|:)
                 |/work/shared\b|\.\./shared/}x;
my $cite = qr{docs/science\.md((?:\s*(?:,|and)?\s*(?:\x{a7}|\\\(sc)\d+(?:\.\d+)?)*)};

my (@bad, @cites);
for my $file (@files) {
    my $text = text_of($file) // next;
    my $n = 0;
    for my $line (split /\n/, $text) {
        $n++;
        push @bad, "$file:$n: $line" if $line =~ $outside;
    }
    # whole text: the man page puts the section on the line after the name
    while ($text =~ /$cite/g) {
        my $line = 1 + (substr($text, 0, $-[0]) =~ tr/\n//);
        push @cites, [$file, $line, $1] if length $1;
    }
}
ok(@files > 100, 'files to look at: ' . scalar @files);
is(scalar @bad, 0, 'no reference to SPEC.md or DESIGN.md, which are not in the repository')
    or diag join("\n", @bad);

# Sections: "## N. Title" and "### N.M Title".
my $science = text_of('docs/science.md') // '';
my %have;
$have{$1} = 1 while $science =~ /^##+ (\d+(?:\.\d+)?)\.? /mg;
ok($have{1} && $have{5}, 'docs/science.md has numbered sections');

ok(@cites > 20, 'citations of docs/science.md sections found: ' . scalar @cites);
my @dangling;
for my $c (@cites) {
    my ($file, $n, $refs) = @$c;
    for my $sec ($refs =~ /(?:\x{a7}|\\\(sc)(\d+(?:\.\d+)?)/g) {
        push @dangling, "$file:$n: \x{a7}$sec" unless $have{$sec};
    }
}
is(scalar @dangling, 0, 'every docs/science.md section cited exists') or diag join("\n", @dangling);

# Its own cross-references (§N inside docs/science.md) too.
my @inner;
my $n = 0;
for my $line (split /\n/, $science) {
    $n++;
    for my $sec ($line =~ /\x{a7}(\d+(?:\.\d+)?)/g) {
        push @inner, "docs/science.md:$n: \x{a7}$sec" unless $have{$sec};
    }
}
is(scalar @inner, 0, 'every section docs/science.md refers to exists') or diag join("\n", @inner);

# Every docs/NAME.md the tree names is there (README points readers at them).
my (%named, @missing);
for my $file (@files) {
    my $text = text_of($file) // next;
    $named{$1} //= $file while $text =~ m{\bdocs/([a-z_-]+\.md)\b}g;
}
for my $doc (sort keys %named) {
    push @missing, "docs/$doc (named in $named{$doc})" unless -f "docs/$doc";
}
ok(keys(%named) >= 5, 'documents in docs/ named in the tree: ' . join(', ', sort keys %named));
is(scalar @missing, 0, 'each of them exists') or diag join("\n", @missing);

done_testing();
