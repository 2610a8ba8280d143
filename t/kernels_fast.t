#!/bin/sh
exec ./build/t/kernels_fast
