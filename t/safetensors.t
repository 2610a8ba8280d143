#!/bin/sh
exec ./build/t/safetensors
