#!/bin/sh
exec ./build/t/cuda_emu
