#!/usr/bin/env python3
"""Print a salted password token for a g3proxy user (python standard library only).

The token is g3proxy's `fast_hash` form: a random 8-byte salt, MD5(password + salt) and
SHA-1(password + salt), all hex. Paste it under a user's `token:` key:

    $ scripts/passphrase_hash.py toor
    token:
      salt: "113323bdab6fd2cc"
      md5: "5c81f2becadde7fa5fde9026652ccc84"
      sha1: "ff9d5c1a14328dd85ee95d4e574bd0558a1dfa96"

    $ scripts/passphrase_hash.py --user alice            # a generated password, a whole user
    $ scripts/passphrase_hash.py --json s3cret            # for dynamic users (JSON sources)

Without a password argument one is generated (URL-safe, 14 characters) and shown: as a YAML
comment on stdout, or on stderr with --json, so stdout stays pasteable. A salt whose token would
read as a number in YAML is never chosen (the values are quoted anyway).
"""

import argparse
import hashlib
import json
import os
import secrets
import sys


def looks_numeric(text):
    """True when YAML could read the text as a number (all digits, or an exponent form)."""
    try:
        float(text)
        return True
    except ValueError:
        return False


def make_token(password, salt):
    data = password.encode("utf-8") + salt
    return {
        "salt": salt.hex(),
        "md5": hashlib.md5(data).hexdigest(),
        "sha1": hashlib.sha1(data).hexdigest(),
    }


def pick_token(password, salt_hex=None):
    if salt_hex is not None:
        return make_token(password, bytes.fromhex(salt_hex))
    while True:
        token = make_token(password, os.urandom(8))
        if not any(looks_numeric(v) for v in token.values()):
            return token


def render_yaml(token, user, generated):
    lines = []
    if generated is not None:
        lines.append(f"# password: {generated}")
    indent = ""
    if user is not None:
        lines.append(f"- name: {json.dumps(user)}")
        indent = "  "
    lines.append(f"{indent}token:")
    for key in ("salt", "md5", "sha1"):
        lines.append(f'{indent}  {key}: "{token[key]}"')
    return "\n".join(lines)


def render_json(token, user):
    if user is not None:
        return json.dumps({"name": user, "token": token})
    return json.dumps(token)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="print a salted password token (salt, md5, sha1) for a g3proxy user"
    )
    parser.add_argument("password", nargs="?", help="the password (generated when omitted)")
    parser.add_argument("--salt", help="the salt as hex (random when omitted)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of YAML")
    parser.add_argument("--user", help="print a whole user entry with this name")
    args = parser.parse_args(argv)

    generated = None
    password = args.password
    if password is None:
        password = secrets.token_urlsafe(10)
        generated = password
    if args.salt is not None:
        try:
            bytes.fromhex(args.salt)
        except ValueError:
            parser.error("--salt must be hex digits")
    token = pick_token(password, args.salt)
    if args.json:
        if generated is not None:
            print(f"password: {generated}", file=sys.stderr)
        print(render_json(token, args.user))
    else:
        print(render_yaml(token, args.user, generated))
    return 0


if __name__ == "__main__":
    sys.exit(main())
