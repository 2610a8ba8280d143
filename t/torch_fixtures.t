#!/bin/sh
exec ./build/t/torch_fixtures
