"""The benchmark's world: 4 brands × 50 rules, their reference data, and a realistic event stream.

The rule set mixes fields and operators the way a broker's does: a few broad rules that
match often (big trades, leverage, deposits), a KYC rule on first deposits, a webhook on
hedging comments, and many narrow rules that rarely match, for about 1.2 matching rules per
event. Generation is seeded, so every run sends the same stream.
"""

from __future__ import annotations

import random
from typing import Any

BRANDS = ("alpha", "beta", "gamma", "delta")
LOGINS_PER_BRAND = 500
SYMBOLS = ("EURUSD", "GBPUSD", "USDJPY", "XAUUSD", "BTCUSD", "US30", "DE40", "AUDUSD")
COUNTRIES = ("CY", "DE", "GB", "FR", "ES", "IT", "PL", "AE", "SG", "ZA")


def login_of(brand_index: int, n: int) -> int:
    return 100_000 * (brand_index + 1) + n


def reference(webhook_url: str) -> dict[str, list[dict[str, Any]]]:
    del webhook_url
    data: dict[str, list[dict[str, Any]]] = {"Group": [], "Account": [], "Customer": [], "Manager": [],
                                             "Rate": [{"currency": "EUR", "usd": 1.08}], "KycStepTemplate": []}
    for b, brand in enumerate(BRANDS):
        data["Group"].append({"group": f"real\\{brand}", "brand": brand, "currency": "USD" if b % 2 == 0 else "EUR"})
        data["Manager"].append({"id": 1000 + b, "name": f"desk {brand}", "enabled": True, "brand": brand})
        for step, level in (("ID", 1), ("POA", 1), ("SOF", 2)):
            data["KycStepTemplate"].append({"brand": brand, "step_code": step, "level": level, "required": True,
                                            "active": True, "title": step})
        for n in range(LOGINS_PER_BRAND):
            login = login_of(b, n)
            data["Account"].append({"login": login, "group": f"real\\{brand}", "name": f"client {login}",
                                    "email": f"c{login}@example.com", "country": COUNTRIES[n % len(COUNTRIES)],
                                    "enable": True, "leverage": (50, 100, 200, 500)[n % 4], "customer_id": login})
            data["Customer"].append({"id": login, "brand": brand, "email": f"c{login}@example.com",
                                     "country": COUNTRIES[n % len(COUNTRIES)], "language": "en",
                                     "kyc_status": "pending", "kyc_current_level": n % 3, "risk_level": "low",
                                     "status": "active", "assigned_manager_id": 1000 + b})
    return data


def _narrow_rules(brand: str, count: int) -> list[dict[str, Any]]:
    """Rules that rarely match, over varied fields and operators (they cost evaluation time)."""
    shapes = [
        lambda i: [{"field": "trade.symbol", "op": "==", "value": f"NOPE{i}"}],
        lambda i: [{"field": "trade.volume", "op": ">", "value": 100_000 + i}],
        lambda i: [{"field": "account.country", "op": "in", "value": [f"X{i}", "QQ"]}],
        lambda i: [{"field": "trade.comment", "op": "matches", "value": f"^never-{i}-[0-9]+$"}],
        lambda i: [{"field": "trade.login", "op": "<", "value": 10 + i}],
        lambda i: [{"field": "customer.country", "op": "==", "value": "CY"},
                   {"field": "trade.volume", "op": ">=", "value": 90_000 + i}],
        lambda i: [{"field": "account.email", "op": "ends_with", "value": f"@never{i}.example"}],
        lambda i: [{"field": "trade.symbol", "op": "starts_with", "value": f"ZZ{i}"}],
        lambda i: [{"field": "account.leverage", "op": ">", "value": 5000 + i}],
        lambda i: [{"field": "customer.risk_level", "op": "==", "value": f"tier-{i}"}],
    ]
    return [{"name": f"{brand} narrow {i}", "brand": brand, "trigger": "trade.opened" if i % 3 else "trade.closed",
             "priority": 200 + i, "conditions": shapes[i % len(shapes)](i),
             "actions": [{"type": "notify.manager", "params": {"message": f"narrow {i}"}}]}
            for i in range(count)]


def rules(webhook_url: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for brand in BRANDS:
        broad = [
            {"name": f"{brand} big trade", "brand": brand, "trigger": "trade.opened", "priority": 10,
             "conditions": [{"field": "trade.volume", "op": ">=", "value": 500}],
             "actions": [{"type": "notify.manager",
                          "params": {"message": "login {{trade.login}} opened {{trade.volume}} {{trade.symbol}}"}}]},
            {"name": f"{brand} high leverage", "brand": brand, "trigger": "trade.opened", "priority": 20,
             "conditions": [{"field": "account.leverage", "op": ">=", "value": 500},
                            {"field": "trade.symbol", "op": "in", "value": ["EURUSD", "GBPUSD", "XAUUSD"]}],
             "actions": [{"type": "customer.set_risk_level", "params": {"risk_level": "high"}}]},
            {"name": f"{brand} first deposit KYC", "brand": brand, "trigger": "deposit.created", "priority": 10,
             "conditions": [{"field": "amount_usd", "op": ">=", "value": 1},
                            {"field": "customer.kyc_current_level", "op": "<", "value": 1}],
             "actions": [{"type": "kyc.set_required_level", "params": {"level": 1, "reason": "first deposit"}}]},
            {"name": f"{brand} deposit notice", "brand": brand, "trigger": "deposit.created", "priority": 20,
             "conditions": [{"field": "amount_usd", "op": ">", "value": 0}],
             "actions": [{"type": "notify.manager", "params": {"message": "deposit {{amount_usd}}"}}]},
            {"name": f"{brand} hedge webhook", "brand": brand, "trigger": "trade.opened", "priority": 30,
             "conditions": [{"field": "trade.comment", "op": "starts_with", "value": "hedge"}],
             "actions": [{"type": "webhook.send", "params": {"url": webhook_url, "body": '{"login": {{trade.login}}}',
                                                             "timeout_ms": 5000}}]},
            {"name": f"{brand} core markets keep customers active", "brand": brand, "trigger": "trade.opened",
             "priority": 40,
             "conditions": [{"field": "account.country", "op": "in", "value": ["CY", "DE", "GB", "FR", "ES", "IT"]}],
             "actions": [{"type": "customer.set_status", "params": {"status": "active"}}]},
            {"name": f"{brand} closed in profit", "brand": brand, "trigger": "trade.closed", "priority": 10,
             "conditions": [{"field": "trade.close_price", "op": ">", "value": 0}],
             "actions": [{"type": "notify.manager", "params": {"message": "closed {{trade.order}}"}}]},
        ]
        out.extend(broad)
        out.extend(_narrow_rules(brand, 50 - len(broad)))
    return out


def events(count: int, seed: int = 7) -> list[tuple[str, dict[str, Any], str | None]]:
    """(topic, record, event) triples: 70 % trades opened, 15 % closed, 15 % deposits."""
    rng = random.Random(seed)
    out = []
    for order in range(1, count + 1):
        b = rng.randrange(len(BRANDS))
        login = login_of(b, rng.randrange(LOGINS_PER_BRAND))
        roll = rng.random()
        if roll < 0.15:
            record = {"order": order, "login": login, "cmd": "OP_BALANCE_IN", "profit": float(rng.randint(10, 5000)),
                      "comment": "deposit"}
            out.append(("trade.push", record, "EV_RECORD_ADD"))
            continue
        record = {"order": order, "login": login, "cmd": rng.choice(("OP_BUY", "OP_SELL")),
                  "volume": rng.choice((10, 50, 100, 200, 500, 1000, 2000)), "symbol": rng.choice(SYMBOLS),
                  "open_price": 1.0 + rng.random(), "close_price": 0.0, "profit": 0.0,
                  "comment": "hedge" if rng.random() < 0.03 else "manual"}
        if roll < 0.30:
            record.update(close_price=1.0 + rng.random(), profit=round(rng.uniform(-50, 50), 2))
            out.append(("trade.push", record, "EV_RECORD_CLOSE_TRADE"))
        else:
            out.append(("trade.push", record, "EV_RECORD_ADD"))
    return out
