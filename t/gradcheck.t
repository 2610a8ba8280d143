#!/bin/sh
exec ./build/t/gradcheck_f64
