"""signgate key create | list | show | public | rotate | disable | enable | revoke | policy"""

from __future__ import annotations

import json
from pathlib import Path

import click

from signgate.cli.common import client_options, make_client
from signgate.cli.output import Progress, emit_json, handles_errors, json_option, table
from signgate.cli.usage import Choice
from signgate.clock import parse_time
from signgate.errors import InvalidInput

ALGORITHMS = ["ecdsa-p256", "ecdsa-p384", "ed25519", "rsa-3072", "rsa-4096"]


@click.group("key")
def key() -> None:
    """Signing keys: each belongs to one project, has versions, and never leaves signgate."""


def _describe(k: dict[str, object]) -> None:
    click.echo(f"key        {k['ref']}")
    click.echo(f"algorithm  {k['algorithm']}" + (f" ({k['rsa_padding']})" if k["rsa_padding"]
                                                 else ""))
    click.echo(f"state      {k['state']}")
    click.echo(f"version    {k['current_version']}")
    if k["rotate_every_days"]:
        click.echo(f"rotate     every {k['rotate_every_days']} days")
    if k["max_signatures"]:
        click.echo(f"limit      {k['max_signatures']} signatures per version")
    if k["require_timestamp"]:
        click.echo("timestamp  required on every signature")
    if k["one_time"]:
        click.echo("one-time   a fresh key pair and certificate for every signing")
    if k["scan"] == "required":
        click.echo("scan       required: signs only what signgate scanned clean")
    if k.get("offline") or k.get("max_per_identity_per_day") or k.get("window_approvals"):
        click.echo(f"release    {_release_policy(k)}")
    if k.get("approvals"):
        click.echo(f"approvals  {k['approvals']} approvers (approver role on "
                   f"{k.get('approver_scope') or k['ref']}) before each signing")
    if k.get("require_builders"):
        click.echo(f"builders   {k['require_builders']} independent builders must submit the "
                   "same digest per artifact and release label")
    if k["compromised_at"]:
        click.echo(f"compromised {k['compromised_at']}  ({k['revoke_reason'] or 'no reason'})")
    versions = k["versions"]
    assert isinstance(versions, list)
    table([(v["version"], "yes" if v["current"] else "", v["store"], v["signatures"],
            v["created_at"], v["retired_at"]) for v in versions],
          ["version", "current", "store", "signatures", "created at", "retired at"])
    for v in versions:
        if v.get("attributes"):
            shown = "  ".join(f"{name}={ {True: 'yes', False: 'no'}.get(value, '?') }"
                              for name, value in v["attributes"].items())
            click.echo(f"version {v['version']} on the HSM: {shown}")


@key.command("create")
@click.argument("ref", metavar="PROJECT/NAME")
@click.option("--algorithm", type=Choice(ALGORITHMS), default="ecdsa-p256",
              show_default=True)
@click.option("--rsa-padding", type=Choice(["pss", "pkcs1v15"]), default="pss",
              show_default=True, help="Signature padding for RSA keys.")
@click.option("--rotate-every", type=click.IntRange(1, 36500), metavar="DAYS",
              help="Rotate to a new version when the current one is this old.")
@click.option("--max-signatures", type=click.IntRange(1), metavar="N",
              help="Rotate to a new version after N signatures.")
@click.option("--cert-validity", type=click.IntRange(1, 36500), default=365, metavar="DAYS",
              show_default=True, help="Validity of each version's code-signing certificate.")
@click.option("--require-timestamp", is_flag=True,
              help="Every signature with this key is timestamped by the server; none is "
                   "handed out without one.")
@click.option("--one-time", is_flag=True,
              help="No long-lived key pair: each signing gets a fresh key and a short-lived "
                   "certificate, destroyed before the response leaves.")
@click.option("--scan", type=Choice(["required", "off"]),
              help="required: sign only artifacts signgate scanned clean itself (the client "
                   "uploads them). Default: required once the server has a scanner.")
@click.option("--store", metavar="NAME",
              help="The key store to make the key pair in: 'soft' (the software vault) or "
                   "a [stores.NAME] of the server's config.toml. Default: its default_store.")
@client_options
@json_option
@handles_errors
def create(ref: str, algorithm: str, rsa_padding: str, rotate_every: int | None,
           max_signatures: int | None, cert_validity: int, require_timestamp: bool,
           one_time: bool, scan: str | None, store: str | None, url: str,
           token_file: Path | None, as_json: bool) -> None:
    """Generate a key inside signgate (and a certificate from the project's CA)."""
    with make_client(url, token_file) as c:
        k = c.create_key(ref, algorithm, rsa_padding, rotate_every, max_signatures,
                         cert_validity, require_timestamp, one_time, scan, store)
    if as_json:
        emit_json(k)
    elif k["one_time"]:
        click.echo(f"created one-time key {k['ref']} ({k['algorithm']}: a new key pair for "
                   "every signing)")
    else:
        where = f", key store {_store(k)}" if store is not None else ""
        click.echo(f"created key {k['ref']} ({k['algorithm']}, version 1{where})")


@key.command("scan-policy")
@click.argument("ref", metavar="PROJECT/NAME")
@click.argument("policy", type=Choice(["required", "off"]))
@client_options
@json_option
@handles_errors
def scan_policy(ref: str, policy: str, url: str, token_file: Path | None,
                as_json: bool) -> None:
    """Whether PROJECT/NAME signs only artifacts signgate scanned clean itself."""
    with make_client(url, token_file) as c:
        k = c.set_scan_policy(ref, policy)
    if as_json:
        emit_json(k)
    else:
        click.echo(f"{k['ref']}: scan {k['scan']}")


@key.command("policy")
@click.argument("ref", metavar="PROJECT/NAME")
@click.option("--approvals", type=click.IntRange(0, 16), metavar="M",
              help="Each signing waits for M approvals from distinct approvers, never the "
                   "requester; 0 turns approvals off.")
@click.option("--approver-scope", metavar="SCOPE",
              help="Whose approver grants count: PROJECT, PROJECT/KEY or '*' (default: "
                   "the key's).")
@click.option("--require-builders", type=click.IntRange(0, 16), metavar="N",
              help="Sign an artifact only once N distinct builders submitted the same "
                   "digest for it and its release label (signgate sign --release); a "
                   "different digest stops the release. 0 turns it off.")
@click.option("--offline/--online", default=None,
              help="Offline: the key signs only inside an open release window "
                   "(signgate release open).")
@click.option("--max-per-identity-per-day", type=click.IntRange(0, 2**31 - 1), metavar="N",
              help="At most N signatures per identity per UTC day with this key; 0: no "
                   "quota.")
@click.option("--window-approvals", type=click.IntRange(0, 16), metavar="M",
              help="A release window opens only once M approvers (never its opener) "
                   "approved it; 0: at once.")
@client_options
@json_option
@handles_errors
def policy(ref: str, approvals: int | None, approver_scope: str | None,
           require_builders: int | None, offline: bool | None,
           max_per_identity_per_day: int | None, window_approvals: int | None, url: str,
           token_file: Path | None, as_json: bool) -> None:
    """Quorum approvals, independent-build agreement, release windows and quotas for
    PROJECT/NAME (admins; recorded)."""
    release = offline is not None or max_per_identity_per_day is not None or \
        window_approvals is not None
    if approvals is None and require_builders is None and not release:
        raise click.UsageError("say --approvals M, --require-builders N, --offline/--online, "
                               "--max-per-identity-per-day N or --window-approvals M")
    if approver_scope is not None and approvals is None:
        raise click.UsageError("--approver-scope goes with --approvals M")
    with make_client(url, token_file) as c:
        if approvals is not None:
            k = c.set_approval_policy(ref, approvals, approver_scope)
        if require_builders is not None:
            k = c.set_builder_policy(ref, require_builders)
        if release:
            k = c.set_release_policy(ref, offline, max_per_identity_per_day,
                                     window_approvals)
    if as_json:
        emit_json(k)
        return
    if approvals is not None:
        if k["approvals"]:
            click.echo(f"{k['ref']}: each signing needs {k['approvals']} approvals "
                       f"(approver role on {k['approver_scope'] or k['ref']})")
        else:
            click.echo(f"{k['ref']}: signs without approvals")
    if require_builders is not None and k.get("require_builders"):
        click.echo(f"{k['ref']}: signs only what {k['require_builders']} independent "
                   "builders agree on (per artifact and release label)")
    elif require_builders is not None:
        click.echo(f"{k['ref']}: signs without independent builders")
    if release:
        click.echo(f"{k['ref']}: " + _release_policy(k))


def _release_policy(k: dict[str, object]) -> str:
    where = ("offline: signs only inside an open release window" if k.get("offline")
             else "online")
    quota = k.get("max_per_identity_per_day")
    quorum = k.get("window_approvals")
    return where + (f"; at most {quota} signatures per identity per UTC day" if quota
                    else "; no daily quota") + (
        f"; a release window opens after {quorum} approvals" if quorum else "")


@key.command("list")
@click.argument("project", required=False)
@client_options
@json_option
@handles_errors
def list_(project: str | None, url: str, token_file: Path | None, as_json: bool) -> None:
    """List keys (of PROJECT)."""
    with make_client(url, token_file) as c:
        items = c.list_keys(project)
    if as_json:
        emit_json(items)
    else:
        table([(k["ref"], k["algorithm"], k["state"], k["current_version"], _store(k))
               for k in items], ["key", "algorithm", "state", "version", "store"])


def _store(k: dict[str, object]) -> str:
    """The store of the current version (one-time keys: where their last pair was)."""
    versions = k["versions"]
    assert isinstance(versions, list)
    current = [v["store"] for v in versions if v["current"]]
    return str(current[0]) if current else (str(versions[-1]["store"]) if versions else "")


@key.command("show")
@click.argument("ref", metavar="PROJECT/NAME")
@client_options
@json_option
@handles_errors
def show(ref: str, url: str, token_file: Path | None, as_json: bool) -> None:
    """Show a key, its policy and its versions."""
    with make_client(url, token_file) as c:
        k = c.show_key(ref)
    if as_json:
        emit_json(k)
    else:
        _describe(k)


@key.command("public")
@click.argument("ref", metavar="PROJECT/NAME")
@click.option("--version", type=click.IntRange(1), help="Version (default: current).")
@click.option("--openpgp", is_flag=True,
              help="Print an ASCII-armored OpenPGP public key (for gpg --import), "
                   "self-certified by the key: needs a signer grant, and is audited.")
@click.option("--user-id", metavar="'NAME <EMAIL>'",
              help="OpenPGP user ID to certify (default: 'PROJECT/NAME (signgate)').")
@click.option("--ssh", is_flag=True,
              help="Print an OpenSSH public key line ('ssh-ed25519 AAAA... signgate:P/N'), "
                   "for allowed_signers, authorized_keys and git's user.signingkey "
                   "(signgate-ssh-keygen maps its comment back to the key).")
@client_options
@json_option
@handles_errors
def public(ref: str, version: int | None, openpgp: bool, user_id: str | None, ssh: bool,
           url: str, token_file: Path | None, as_json: bool) -> None:
    """Print the public key (PEM, OpenPGP with --openpgp, OpenSSH with --ssh) of a key
    version."""
    if user_id is not None and not openpgp:
        raise InvalidInput("--user-id applies to --openpgp exports only")
    if ssh and openpgp:
        raise InvalidInput("give at most one of --openpgp or --ssh")
    with make_client(url, token_file) as c:
        p = c.openpgp_key(ref, version, user_id) if openpgp else c.public_key(ref, version)
    if ssh:
        from signgate.formats.sshsig import openssh_line

        p = dict(p) | {"openssh": openssh_line(p["public_key_pem"], p["key"])}
    if as_json:
        emit_json(p)
    elif ssh:
        click.echo(p["openssh"])
    else:
        click.echo(p["armored"] if openpgp else p["public_key_pem"], nl=False)


@key.command("cert")
@click.argument("ref", metavar="PROJECT/NAME")
@click.option("--version", type=click.IntRange(1), help="Version (default: current).")
@client_options
@json_option
@handles_errors
def cert(ref: str, version: int | None, url: str, token_file: Path | None,
         as_json: bool) -> None:
    """Print a key version's code-signing certificate and its issuing CA (PEM)."""
    with make_client(url, token_file) as c:
        chain = c.key_certificate(ref, version)
    if as_json:
        emit_json(chain)
    else:
        click.echo(chain["chain_pem"], nl=False)


@key.command("csr")
@click.argument("ref", metavar="PROJECT/NAME")
@click.option("--version", type=click.IntRange(1), help="Version (default: current).")
@client_options
@json_option
@handles_errors
def csr(ref: str, version: int | None, url: str, token_file: Path | None,
        as_json: bool) -> None:
    """Print a PKCS#10 request (PEM) for a key version, to have another CA certify it."""
    with make_client(url, token_file) as c:
        r = c.key_csr(ref, version)
    if as_json:
        emit_json(r)
    else:
        click.echo(r["pem"], nl=False)


@key.command("import-cert")
@click.argument("ref", metavar="PROJECT/NAME")
@click.argument("chain", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--version", type=click.IntRange(1), help="Version (default: current).")
@client_options
@json_option
@handles_errors
def import_cert(ref: str, chain: Path, version: int | None, url: str,
                token_file: Path | None, as_json: bool) -> None:
    """Attach a certificate chain (PEM, leaf first) that another CA issued for a key
    version; it must match the key and allow code signing."""
    try:
        text = chain.read_text("ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read {chain} as PEM: {exc}") from exc
    with make_client(url, token_file) as c:
        r = c.import_certificate(ref, text, version)
    if as_json:
        emit_json(r)
    else:
        click.echo(f"attached {r['subject']} (serial {r['serial']}) to {ref}")


def _state_command(name: str, help_text: str) -> click.Command:
    @click.argument("ref", metavar="PROJECT/NAME")
    @client_options
    @json_option
    @handles_errors
    def command(ref: str, url: str, token_file: Path | None, as_json: bool) -> None:
        with make_client(url, token_file) as c:
            k = c.key_action(ref, name)
        if as_json:
            emit_json(k)
        else:
            click.echo(f"{k['ref']} is now {k['state']}")

    return click.command(name, help=help_text)(command)


@key.command("rotate")
@click.argument("ref", metavar="PROJECT/NAME")
@click.option("--store", metavar="NAME",
              help="Make the new version in this key store ('soft' or a [stores.NAME] of the "
                   "server's config.toml): how a key moves onto an HSM. Default: the store "
                   "of the current version.")
@client_options
@json_option
@handles_errors
def rotate(ref: str, store: str | None, url: str, token_file: Path | None,
           as_json: bool) -> None:
    """Make a new current version; older ones only verify."""
    with make_client(url, token_file) as c:
        k = c.rotate_key(ref, store)
    if as_json:
        emit_json(k)
    else:
        where = f" (key store {_store(k)})" if store is not None else ""
        click.echo(f"rotated {k['ref']}: version {k['current_version']} is now current{where}")
key.add_command(_state_command("disable", "Stop a key from signing until it is enabled."))
key.add_command(_state_command("enable", "Let a disabled key sign again."))


@key.command("revoke")
@click.argument("ref", metavar="PROJECT/NAME")
@click.option("--compromised-at", required=True, metavar="TIME",
              help="ISO 8601 time from which the key must be considered compromised.")
@click.option("--reason", help="Why the key is revoked.")
@click.option("--blast-radius", "blast_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write what the key signed since TIME, with the log's proofs, to "
                   "this file (see 'key blast-radius').")
@client_options
@json_option
@handles_errors
def revoke(ref: str, compromised_at: str, reason: str | None, blast_file: Path | None,
           url: str, token_file: Path | None, as_json: bool) -> None:
    """Revoke a key for good: signatures it made from TIME on are invalid."""
    when = parse_time(compromised_at)
    with make_client(url, token_file) as c:
        k = c.revoke_key(ref, when.isoformat(), reason)
        radius = c.blast_radius(ref, when.isoformat()) if blast_file else None
    if blast_file is not None and radius is not None:
        _write_radius(blast_file, radius)
    if as_json:
        emit_json(k)
    else:
        click.echo(f"revoked {k['ref']}; signatures made since {k['compromised_at']} are invalid")
        if radius is not None:
            click.echo(f"{len(radius['signatures'])} signatures made since then: {blast_file}")


def _write_radius(path: Path, radius: dict[str, object]) -> None:
    from signgate.formats.files import write_atomic

    write_atomic(path, json.dumps(radius, indent=2, sort_keys=True).encode() + b"\n")


@key.command("blast-radius")
@click.argument("ref", metavar="PROJECT/NAME")
@click.option("--since", required=True, metavar="TIME",
              help="From this time on (ISO 8601): when the key may have been compromised.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the JSON file here (default: print it).")
@client_options
@json_option
@handles_errors
def blast_radius(ref: str, since: str, output: Path | None, url: str,
                 token_file: Path | None, as_json: bool) -> None:
    """Exactly what KEY signed at or after TIME, who asked for each, and each audit entry
    with its inclusion proof in the log's signed checkpoint: a JSON file to act on and to
    send to customers, who check it with 'signgate log check FILE --log-key VKEY'.
    Needs an auditor grant over the key."""
    with make_client(url, token_file) as c:
        radius = c.blast_radius(ref, parse_time(since).isoformat(),
                                Progress("blast radius", "signatures proven"))
    if output is None:
        emit_json(radius)
        return
    _write_radius(output, radius)
    if as_json:
        emit_json({"file": str(output), "signatures": len(radius["signatures"])})
    else:
        click.echo(f"{len(radius['signatures'])} signatures of {ref} since "
                   f"{radius['since']}: {output}")
