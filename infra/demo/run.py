"""`carelog demo`: send the synthetic stream to a running carelog, then show where it went."""

from __future__ import annotations

import argparse
import asyncio

from rich.console import Console
from rich.syntax import Syntax

from infra.demo import rejections, report
from infra.demo.command import SCOPES
from infra.demo.plan import Plan, make_plan
from infra.demo.senders import DemoError, Target, check_reachable, progress_bars, send_plan
from streams.settings import Settings


def run_demo(args: argparse.Namespace, settings: Settings) -> int:
    console = Console()
    try:
        plan = make_plan(args.seed, args.patients)
        target = _target(args, settings)
        return asyncio.run(_run(plan, target, settings, args.wait, console))
    except (DemoError, ValueError) as exc:
        console.print(f"[red]carelog demo: {exc}[/red]")
        return 1


def _target(args: argparse.Namespace, settings: Settings) -> Target:
    host = "127.0.0.1" if settings.gateway.host in ("0.0.0.0", "::") else settings.gateway.host
    gateway = (args.gateway or f"http://{host}:{settings.gateway.port}").rstrip("/")
    mllp_host, _, port = args.mllp.rpartition(":")
    if not mllp_host or not port.isdigit():
        raise DemoError(f"--mllp {args.mllp!r}: give HOST:PORT, e.g. 127.0.0.1:2575")
    return Target(gateway, mllp_host, int(port), args.token or _dev_token(settings))


def _dev_token(settings: Settings) -> str:
    from api.security.dev_token import mint_token, signing_secret

    if settings.auth.hs256_secret is None and (settings.auth.jwks_url or settings.auth.public_key):
        raise DemoError(
            "the gateway verifies tokens with CARELOG_AUTH_JWKS_URL/PUBLIC_KEY: pass --token "
            f"with the scopes {SCOPES!r}"
        )
    return mint_token(
        signing_secret(settings),
        SCOPES,
        "carelog-demo",
        3600,
        audience=settings.auth.audience,
        issuer=settings.auth.issuer,
    )


async def _run(plan: Plan, target: Target, settings: Settings, wait: float, out: Console) -> int:
    await check_reachable(target)
    since = await asyncio.to_thread(rejections.marks, settings)
    out.print(
        f"[bold]carelog demo[/bold]: {len(plan.people)} patients, seed {plan.seed}, "
        f"{len(plan.messages)} messages ({len(plan.bad)} deliberately bad) to "
        f"{target.gateway} and mllp://{target.mllp_host}:{target.mllp_port}"
    )
    with progress_bars() as progress:
        results = await send_plan(plan, target, progress)
    out.print(report.sent_table(results))
    problems = []
    failed = report.unexpected(results)
    for r in failed[:10]:
        out.print(f"[red]not accepted[/red]: {r.message.label}: {r.detail}")
    if failed:
        problems.append(f"{len(failed)} good messages were not accepted")

    person = plan.shown
    pid = person.fhir_id
    url = f"{target.gateway}/fhir/Patient/{pid}"
    out.rule(f"a patient over FHIR: {person.given} {person.family}, MRN {person.mrn}")
    out.print(f"{url}\n")
    out.print('TOKEN=$(carelog token --scope "system/*.read" | tail -1)', soft_wrap=True)
    out.print(f"curl -s -H \"Authorization: Bearer $TOKEN\" '{url}/$everything'\n", soft_wrap=True)
    bundle = await report.wait_for_everything(target.gateway, target.token, pid, wait)
    if bundle is None:
        problems.append(f"Patient/{pid} was not readable within {wait:.0f}s")
        out.print(
            "[red]not readable yet[/red]: are the worker and the projection running "
            "(`carelog run` starts them)? Look at var/logs/."
        )
    else:
        for line in report.everything_summary(bundle):
            out.print(f"  {line}")

    out.rule("its Delta rows")
    expected = report.expected_rows(bundle)
    rows = await report.wait_for_lake(settings, pid, expected, min(wait, 30.0))
    out.print(report.lake_table(rows, person))
    if all(r.rows is None for r in rows):
        out.print("no Delta tables yet: is the sink running (`carelog run` starts it)?")
    from projections.lake.tables import Lake

    snippet = report.polars_snippet(Lake.from_settings(settings).uri, pid)
    out.print(Syntax(snippet, "python", theme="ansi_dark", word_wrap=True))

    out.rule("the rejected messages and why")
    found = await asyncio.to_thread(rejections.find_rejections, settings, since, plan.bad, wait)
    out.print(report.rejection_table(plan.bad, found))
    if len(found) < len(plan.bad):
        problems.append(f"{len(plan.bad) - len(found)} bad messages not on carelog.rejected")
    out.print("all of them: carelog tail carelog.rejected --from-beginning --idle 2")
    for problem in problems:
        out.print(f"[red]carelog demo: {problem}[/red]")
    return 1 if problems else 0
