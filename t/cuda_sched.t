#!/bin/sh
exec ./build/t/cuda_sched
