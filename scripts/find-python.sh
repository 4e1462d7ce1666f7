#!/usr/bin/env bash
# Print a Python >= 3.12 interpreter for the venv (ansible-core 2.21 needs it).
set -euo pipefail
for c in python3.13 python3.12 "$HOME/.pyenv/versions/3.13.0/bin/python3" "$HOME/.pyenv/versions/3.12.1/bin/python3" python3; do
  p=$(command -v "$c" 2>/dev/null) || continue
  if "$p" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then echo "$p"; exit 0; fi
done
echo "find-python: need Python >= 3.12 for the venv (ansible-core 2.21); install python3.12+ or pyenv" >&2
exit 1
