"""Rewards API (v1): a wallet's proof for the dashboard and claimers, and each epoch's
published files. Views parse, look up and respond."""

from __future__ import annotations

import re
from pathlib import Path

from django.http import FileResponse, HttpRequest, HttpResponse, HttpResponseBase, JsonResponse

from webapp.payouts.models import Allocation, Epoch

_WALLET = re.compile(r"^0x[0-9a-fA-F]{40}$")
_FILES = {
    "inputs.zip": ("inputs_file", "application/zip"),
    "claims.json": ("claims_file", "application/json"),
}


def _error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def proof(request: HttpRequest, wallet: str) -> HttpResponse:
    """GET /api/v1/rewards/proof/<wallet>[?epoch=N]: the wallet's cumulative amount and
    proof in the latest published epoch (or epoch N), with its explanation."""
    if not _WALLET.match(wallet):
        return _error(400, "wallet must be a 0x-prefixed 20-byte hex address")
    raw = request.GET.get("epoch")
    epochs = Epoch.objects.filter(state=Epoch.State.PUBLISHED)
    if raw is not None:
        try:
            epochs = epochs.filter(number=int(raw))
        except ValueError:
            return _error(400, "epoch must be an integer")
    epoch = epochs.order_by("-number").first()
    if epoch is None:
        return _error(404, "no published epoch")
    alloc = Allocation.objects.filter(epoch=epoch, wallet_address=wallet.lower()).first()
    if alloc is None:
        return _error(404, f"{wallet} has no allocation in epoch {epoch.number}")
    return JsonResponse(
        {
            "epoch": epoch.number,
            "wallet": alloc.wallet_address,
            "amount": str(alloc.amount),
            "cumulative_amount": str(alloc.cumulative_amount),
            "proof": alloc.proof,
            "merkle_root": epoch.merkle_root,
            "inputs_sha256": epoch.inputs_sha256,
            "chain_id": epoch.chain_id,
            "distributor": epoch.distributor,
            "breakdown": alloc.breakdown,
        }
    )


_FILE_NAME = re.compile(r"^epoch-(\d{6})-(inputs\.zip|claims\.json)$")


def epoch_file(request: HttpRequest, name: str) -> HttpResponseBase:
    """GET /api/v1/rewards/files/epoch-NNNNNN-inputs.zip | -claims.json: an epoch's published
    files (set ROADMESH_REWARDS_PUBLIC_URL to this folder's URL to publish these links)."""
    m = _FILE_NAME.match(name)
    if m is None:
        return _error(404, "no such file")
    number, kind = int(m.group(1)), m.group(2)
    epoch = Epoch.objects.filter(number=number).exclude(state=Epoch.State.SCORED).first()
    if epoch is None:
        return _error(404, f"epoch {number} is not published")
    attr, content_type = _FILES[kind]
    path = Path(getattr(epoch, attr))
    if not path.is_file():
        return _error(404, f"the {kind} of epoch {number} is missing on this server")
    return FileResponse(path.open("rb"), content_type=content_type, filename=path.name)
