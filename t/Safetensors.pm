# safetensors files taken apart and put back together, for the tests that
# make broken or foreign checkpoints (t/ckpt_errors.t, t/ckpt_nometa.t):
#   st_read(PATH)                  (header hash, data bytes)
#   st_write(PATH, HEADER, DATA)   the header padded to 8 bytes, as the format wants
#   st_drop(HEADER, DATA, NAME)    without tensor NAME, the rest re-packed contiguously
#   slurp, spew                    whole files, raw
package Safetensors;
use strict;
use warnings;
use Exporter 'import';
use JSON::PP;

our @EXPORT = qw(st_read st_write st_drop slurp spew);
my $json = JSON::PP->new->canonical;

sub slurp { local $/; open my $f, '<:raw', $_[0] or die "$_[0]: $!"; my $d = <$f>; close $f; $d }
sub spew { open my $f, '>:raw', $_[0] or die "$_[0]: $!"; print $f $_[1]; close $f }

sub st_read {
    my $raw = slurp($_[0]);
    my $n = unpack('Q<', substr($raw, 0, 8));
    return ($json->decode(substr($raw, 8, $n)), substr($raw, 8 + $n));
}

sub st_write {
    my ($path, $h, $data) = @_;
    my $hj = $json->encode($h);
    $hj .= ' ' x ((8 - length($hj) % 8) % 8);
    spew($path, pack('Q<', length $hj) . $hj . $data);
}

sub st_drop {
    my ($h, $d, $name) = @_;
    delete $h->{$name};
    my ($nd, $off) = ('', 0);
    for my $k (sort { $h->{$a}{data_offsets}[0] <=> $h->{$b}{data_offsets}[0] } grep { $_ ne '__metadata__' } keys %$h) {
        my ($b, $e) = @{ $h->{$k}{data_offsets} };
        $nd .= substr($d, $b, $e - $b);
        $h->{$k}{data_offsets} = [$off, $off + $e - $b];
        $off += $e - $b;
    }
    return ($h, $nd);
}
1;
