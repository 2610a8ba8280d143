#!/usr/bin/perl
# achilles data --export: a split written as safetensors matches the
# generator bit for bit (build/t/data_export reads it back with the library
# and regenerates every sequence); the same split as CSV and JSONL matches the
# safetensors file, read here with a reader of our own. Bad extensions are
# usage errors (exit 2); unwritable paths and bad presets exit 1 naming the
# file, and no temporary file is left behind.
use strict;
use warnings;
use Test::More;
use JSON::PP;
use File::Temp qw(tempdir);
use FindBin;

chdir "$FindBin::Bin/.." or die;
my $ach = $ENV{ACHILLES_BIN} // './build/achilles';
my $check = './build/t/data_export';
my $preset = 't/data/small.json';
my $dir = tempdir(CLEANUP => 1);

sub slurp { local $/; open my $f, '<:raw', $_[0] or die "$_[0]: $!"; my $d = <$f>; close $f; $d }
sub lines { my @l = split /\n/, slurp($_[0]); return @l }

# run a command; returns (exit status, stdout, stderr)
sub run {
    system(join(' ', map { "'$_'" } @_) . " >'$dir/out' 2>'$dir/err'");
    my $st = $? == -1 ? -1 : ($? & 127 ? 128 + ($? & 127) : $? >> 8);
    return ($st, slurp("$dir/out"), slurp("$dir/err"));
}
sub tmp_files { my $d = shift; opendir my $h, $d or die; my @t = grep { /\.tmp$/ } readdir $h; return @t }

# Our own safetensors reader: { name => { dtype, shape, data => [ints] } },
# and the metadata. Checks the layout the format requires on the way.
sub read_st {
    my $raw = slurp($_[0]);
    my $hlen = unpack('Q<', substr($raw, 0, 8));
    my $h = decode_json(substr($raw, 8, $hlen));
    my $meta = delete $h->{__metadata__} // {};
    my ($pos, %t) = (0);
    for my $name (sort { $h->{$a}{data_offsets}[0] <=> $h->{$b}{data_offsets}[0] } keys %$h) {
        my ($b, $e) = @{ $h->{$name}{data_offsets} };
        die "$name: gap or overlap at $b (expected $pos)" if $b != $pos;
        $pos = $e;
        $t{$name} = { dtype => $h->{$name}{dtype}, shape => $h->{$name}{shape},
                      data => [unpack('l<*', substr($raw, 8 + $hlen + $b, $e - $b))] };
    }
    die "data has " . (length($raw) - 8 - $hlen - $pos) . " stray bytes" if 8 + $hlen + $pos != length $raw;
    return (\%t, $meta);
}

my %n = (train => 15 * 400, test => 16 * 50);   # small: 43 is held out of train
my $len = 6;
for my $case (['train', 0], ['test', 7]) {
    my ($split, $seed) = @$case;
    my $n = $n{$split};
    my %file = map { ($_ => "$dir/$split.$_") } qw(safetensors csv jsonl);
    for my $fmt (qw(safetensors csv jsonl)) {
        my ($st, $out, $err) = run($ach, 'data', '--preset', $preset, '--split', $split, '--seed', $seed,
                                   '--export', $file{$fmt});
        is($st, 0, "$split as $fmt: exit status 0") or diag $err;
        is($out, "wrote $file{$fmt}: $n sequences of small's $split split (seed $seed) as $fmt\n",
           "$split as $fmt: one line says what was written");
    }
    my ($st, $out) = run($check, $preset, $split, $seed, $file{safetensors});
    is($st, 0, "$split: the safetensors file matches the generator") or diag $out;
    is($out, "checked $n sequences\n", "$split: all $n sequences were checked");

    my ($t, $meta) = read_st($file{safetensors});
    is_deeply([sort keys %$t], [sort qw(tokens labels pair key_pos label_comp label_sym)], "$split: the six tensors");
    is_deeply($t->{tokens}{shape}, [$n, $len], "$split: tokens is [N, L]");
    is_deeply([map { "$t->{$_}{dtype} @{ $t->{$_}{shape} }" } qw(labels pair key_pos label_comp label_sym)],
              [("I32 $n") x 5], "$split: the other five are int32 [N]");
    is($meta->{preset}, 'small', "$split: metadata names the preset");
    is("$meta->{split} $meta->{seed} $meta->{vocab_size}", "$split $seed 64", "$split: metadata split, seed, vocab_size");
    my $names = decode_json($meta->{pair_names});
    is_deeply($names, [qw(11 12 13 14 21 22 23 24 31 32 33 34 41 42 43 44)], "$split: pair_names in index order");
    is($meta->{held_out}, '["43"]', "$split: held_out lists pair 43");

    my @tok = @{ $t->{tokens}{data} };
    my @row = map { my $i = $_;
        [$i, $names->[$t->{pair}{data}[$i]], map({ $t->{$_}{data}[$i] } qw(key_pos labels label_comp label_sym)),
         @tok[$i * $len .. $i * $len + $len - 1]] } 0 .. $n - 1;

    # The safetensors content itself: each key sits at key_pos with the
    # pair's anchors after it, and the labels follow small.json's shifts.
    my %shift = (1 => 5, 2 => 1, 3 => -2, 4 => -8);
    my ($layout, $labels, $n43) = (0, 0, 0);
    for my $r (@row) {
        my ($i, $pair, $p, $label, $comp, $sym, @s) = @$r;
        my ($a1, $a2) = split //, $pair;
        $layout++ if "$s[$p + 1]$s[$p + 2]" ne $pair || $s[$p] < 20 || $s[$p] >= 44;
        my $key = $s[$p];
        my $c = $key + $shift{$a1} + $shift{$a2};
        my $want_sym = $pair eq '34' ? $key - 10 : $pair eq '43' ? $key - 6 : $c;   # the mirror's trained shift
        my $want = $pair eq '34' ? $key - 6 : $c;
        $labels++ if $label != $want || $comp != $c || $sym != $want_sym;
        $n43++ if $pair eq '43';
    }
    is($layout, 0, "$split: every key at key_pos, followed by its pair's anchors");
    is($labels, 0, "$split: labels, composite and symmetric answers follow small.json");
    is($n43, $split eq 'test' ? 50 : 0, "$split: pair 43 only in the test split");

    my @csv = lines($file{csv});
    is(shift(@csv), 'index,pair,key_pos,label,label_comp,label_sym,' . join(',', map { "tok$_" } 0 .. $len - 1),
       "$split: CSV header");
    is(scalar @csv, $n, "$split: CSV has a row per sequence");
    my $bad = grep { my @f = split /,/, $csv[$_]; !($f[1] =~ s/^"(.*)"$/$1/) || "@f" ne "@{ $row[$_] }" } 0 .. $#csv;
    is($bad, 0, "$split: every CSV row matches the safetensors file");

    my @jsonl = lines($file{jsonl});
    is(scalar @jsonl, $n, "$split: JSONL has a line per sequence");
    my $keys = 'index key_pos label label_comp label_sym pair tokens';
    $bad = grep { my $o = decode_json($jsonl[$_]); my ($i, $pair, $p, $l, $c, $s, @s) = @{ $row[$_] };
                  join(' ', sort keys %$o) ne $keys
                  || "$o->{index} $o->{pair} $o->{key_pos} $o->{label} $o->{label_comp} $o->{label_sym} @{ $o->{tokens} }"
                     ne "$i $pair $p $l $c $s @s" } 0 .. $#jsonl;
    is($bad, 0, "$split: every JSONL object matches the safetensors file");
}
is_deeply([tmp_files($dir)], [], 'no temporary file is left behind');

# The checker can fail: one token changed in a copy.
{
    my $raw = slurp("$dir/test.safetensors");
    my $hlen = unpack('Q<', substr($raw, 0, 8));
    my ($t) = read_st("$dir/test.safetensors");
    my $at = 8 + $hlen + 4 * 100;   # tokens come first: sequence 16, token 4
    substr($raw, $at, 4) = pack('l<', unpack('l<', substr($raw, $at, 4)) + 1);
    open my $f, '>:raw', "$dir/bad.safetensors" or die;
    print $f $raw;
    close $f;
    my ($st, $out) = run($check, $preset, 'test', 7, "$dir/bad.safetensors");
    is($st, 1, 'a changed token fails the check');
    like($out, qr/tensor 'tokens' differs from the generator at sequence 16/, '... at the sequence changed');
    unlink "$dir/bad.safetensors";
}

# Another seed, another split; exporting over a file replaces it.
{
    my $before = slurp("$dir/test.csv");
    my ($st) = run($ach, 'data', '--preset', $preset, '--split', 'test', '--seed', 8, '--export', "$dir/test.csv");
    is($st, 0, 'export over an existing file');
    isnt(slurp("$dir/test.csv"), $before, '... replaces it (another seed, other sequences)');
    my @l = lines("$dir/test.csv");
    is(scalar @l, 801, '... whole');
}

# The paper's task: the whole composite train split.
{
    my ($st, $out) = run($ach, 'data', '--export', "$dir/composite.safetensors");
    is($st, 0, 'composite train as safetensors');
    ($st, $out) = run($check, 'composite', 'train', 0, "$dir/composite.safetensors");
    is($out, "checked 252000 sequences\n", '... all 252000 sequences match the generator');
    ($st) = run($ach, 'data', '--export', "$dir/composite.csv");
    my @l = lines("$dir/composite.csv");
    is(scalar @l, 252001, 'composite train as CSV: a header and 252000 rows');
    unlink "$dir/composite.safetensors", "$dir/composite.csv";
}

# A dense_ar split (vectors): float32 [N, L, D], the generator's floats bit
# for bit; the metadata names the preset's data seed. Token formats and
# --counts are usage errors for it.
{
    my $file = "$dir/dense-val.safetensors";
    my ($st, $out, $err) = run($ach, 'data', '--preset', 'dense-ar-small', '--split', 'val', '--export', $file);
    is($st, 0, 'dense-ar-small val as safetensors') or diag $err;
    is($out, "wrote $file: 2000 sequences of dense-ar-small's val split (data seed 0) as safetensors\n",
       '... one line says what was written');
    ($st, $out) = run($check, 'dense-ar-small', 'val', 0, $file);
    is($out, "checked 2000 sequences\n", '... all 2000 match the generator bit for bit');
    my $raw = slurp($file);
    my $hlen = unpack('Q<', substr($raw, 0, 8));
    my $h = decode_json(substr($raw, 8, $hlen));
    is_deeply($h->{vectors}{shape}, [2000, 32, 64], '... vectors is [N, L, D]');
    is($h->{vectors}{dtype}, 'F32', '... float32');
    is(length($raw), 8 + $hlen + 2000 * 32 * 64 * 4, '... and nothing else');
    my @x0 = unpack('f<64', substr($raw, 8 + $hlen, 256));
    my $norm = 0;
    $norm += $_ * $_ for @x0;
    ok(abs(sqrt($norm) - 1) < 1e-6 && $x0[0] < 0, "... x_0 of sequence 0 has unit norm and x_0[0] < 0 (val)");
    ($st, $out) = run($check, 'dense-ar-small', 'test', 0, $file);
    is($st, 1, 'the checker fails on another split') ;
    for my $args (['--export', "$dir/dense.csv"], ['--export', "$dir/dense.jsonl"], ['--counts']) {
        ($st, $out, $err) = run($ach, 'data', '--preset', 'dense-ar-small', @$args);
        is($st, 2, "dense_ar with @$args: usage error");
        like($err, qr/dense-ar-small is a dense_ar preset, of vectors: (it exports as \.safetensors only|it has no pairs to count)/,
             "... says why");
    }
    ok(!-e "$dir/dense.csv", '... and writes nothing');
}

# Errors.
for my $file ('x.txt', 'x', 'x.CSV', 'x.safetensors.bak') {
    my ($st, $out, $err) = run($ach, 'data', '--preset', $preset, '--export', "$dir/$file");
    is($st, 2, "--export $file: exit status 2");
    like($err, qr/--export '\Q$dir\/$file\E': the file name must end in \.safetensors, \.csv or \.jsonl/,
         '... naming the file and the accepted extensions');
    ok(!-e "$dir/$file", '... and nothing written');
}
{
    my ($st, $out, $err) = run($ach, 'data', '--preset', $preset, '--counts', '--export', "$dir/x.csv");
    is($st, 2, '--export with --counts: exit status 2');
    like($err, qr/--counts does not combine with --export/, '... saying so');
    ($st, $out, $err) = run($ach, 'data', '--export');
    is($st, 2, '--export without a file: exit status 2');
}
for my $fmt (qw(safetensors csv jsonl)) {
    my $path = "$dir/no/such/dir/x.$fmt";
    my ($st, $out, $err) = run($ach, 'data', '--preset', $preset, '--export', $path);
    is($st, 1, "unwritable $fmt path: exit status 1");
    like($err, qr/^achilles: data: \Q$path\E: .*No such file or directory$/m, '... the message names the path');
    is($out, '', '... and claims nothing was written');

    # a directory in the way: the temporary file is written, the rename fails
    mkdir "$dir/in-the-way.$fmt" or die;
    ($st, $out, $err) = run($ach, 'data', '--preset', $preset, '--export', "$dir/in-the-way.$fmt");
    is($st, 1, "a directory named x.$fmt: exit status 1");
    like($err, qr/\Q$dir\E\/in-the-way\.$fmt: .*(directory|rename)/i, '... the message names the path');
    ok(!-e "$dir/in-the-way.$fmt.tmp", '... and its temporary file is removed');
    rmdir "$dir/in-the-way.$fmt";
}
{
    my ($st, $out, $err) = run($ach, 'data', '--preset', "$dir/missing.json", '--export', "$dir/x.jsonl");
    is($st, 1, 'a bad preset: exit status 1');
    like($err, qr/\Q$dir\E\/missing\.json/, '... naming the preset file');
    ok(!-e "$dir/x.jsonl", '... and nothing written');
}

# A full disk: exit status 1 naming the file, no file and no temporary left.
my $fs = "$dir/fs";
END { system("umount '$fs' 2>/dev/null") if $fs && -d $fs }
SKIP: {
    mkdir $fs or die;
    skip 'cannot mount a small tmpfs here (needs root)', 9
        if $> != 0 || system("mount -t tmpfs -o size=400k tmpfs '$fs' 2>/dev/null") != 0;
    for my $fmt (qw(safetensors csv jsonl)) {
        my ($st, $out, $err) = run($ach, 'data', '--export', "$fs/x.$fmt");
        is($st, 1, "disk full while writing $fmt: exit status 1");
        like($err, qr/\Q$fs\E\/x\.$fmt: .*No space left on device/, '... the message names the file');
        ok(!-e "$fs/x.$fmt" && !tmp_files($fs), '... and leaves no file behind');
    }
}
is_deeply([tmp_files($dir)], [], 'still no temporary file anywhere');

done_testing();
