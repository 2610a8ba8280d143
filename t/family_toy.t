#!/bin/sh
exec ./build/t/family_toy_f64
