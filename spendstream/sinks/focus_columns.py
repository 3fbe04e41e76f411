"""FOCUS versions: the columns each exported version has, in file order, with Parquet types.

Column IDs are the specification's own (FinOps-Open-Cost-and-Usage-Spec/FOCUS_Spec, tags
``v1.0`` and ``v1.2``, ``specification/columns/*.md``); docs/focus.md lists the sources.

- 1.0: every column of FOCUS 1.0 (mandatory, recommended and conditional: the FinOps
  Foundation's validator requires the conditional ones to be present, null where they do not
  apply: commitment discounts, regions, resources), then ``x_`` columns for what 1.0 lacks
  (the model and token type, which 1.1 put in ``SkuMeter``/``SkuPriceDetails``).
- 1.2: the mandatory columns, the conditional ones that apply to metered API usage
  (``ConsumedQuantity``/``Unit``, unit prices, ``PricingCategory``, ``SkuId``, ``SkuMeter``,
  ``SkuPriceId``, ``SkuPriceDetails``, ``Tags``), the recommended ``ChargeFrequency``,
  ``InvoiceId`` and ``ServiceSubcategory``, and the pricing-currency columns
  (``PricingCurrency``, ``PricingCurrencyListUnitPrice``, ``PricingCurrencyContractedUnitPrice``,
  ``PricingCurrencyEffectiveCost``: prices are in USD, a file may be billed in another currency).

``x_`` columns (FOCUS has none of these): ``x_ConsumerId`` (the ledger's customer; no released
FOCUS version, 1.2 included, has a consumer column), ``x_Events``, ``x_Requests``,
``x_UnpricedEvents``, ``x_BilledCostSource`` (``estimate`` or ``invoice``), ``x_CostDriver``
(the token type or unit name), ``x_ExchangeRate`` and ``x_ExchangeRateDate`` (units of
``BillingCurrency`` per USD and the date of that rate; null in a USD file).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from spendstream.sinks.arrow import require_pyarrow

if TYPE_CHECKING:
    import pyarrow as pa

# Parquet types by name: pyarrow (the `export` extra) is imported only to write a schema.
MONEY_TYPE = "decimal128(38, 18)"
QUANTITY_TYPE = "decimal128(38, 9)"
RATE_TYPE = "decimal128(38, 12)"
MONEY_SCALE = 18  # places of the ledger's money; a converted file needs more (its rate's too)
TIME_TYPE = "timestamp(ms, UTC)"
TEXT = "string"
COUNT = "int64"

BOTH = frozenset({"1.0", "1.2"})
ONLY_1_0 = frozenset({"1.0"})
ONLY_1_2 = frozenset({"1.2"})
# Every column once: (ID, Parquet type, versions that have it), in file order.
COLUMNS: tuple[tuple[str, str, frozenset[str]], ...] = (
    ("AvailabilityZone", TEXT, ONLY_1_0),
    ("BilledCost", MONEY_TYPE, BOTH),
    ("BillingAccountId", TEXT, BOTH),
    ("BillingAccountName", TEXT, BOTH),
    ("BillingCurrency", TEXT, BOTH),
    ("BillingPeriodEnd", TIME_TYPE, BOTH),
    ("BillingPeriodStart", TIME_TYPE, BOTH),
    ("ChargeCategory", TEXT, BOTH),
    ("ChargeClass", TEXT, BOTH),
    ("ChargeDescription", TEXT, BOTH),
    ("ChargeFrequency", TEXT, BOTH),
    ("ChargePeriodEnd", TIME_TYPE, BOTH),
    ("ChargePeriodStart", TIME_TYPE, BOTH),
    ("CommitmentDiscountCategory", TEXT, ONLY_1_0),
    ("CommitmentDiscountId", TEXT, ONLY_1_0),
    ("CommitmentDiscountName", TEXT, ONLY_1_0),
    ("CommitmentDiscountStatus", TEXT, ONLY_1_0),
    ("CommitmentDiscountType", TEXT, ONLY_1_0),
    ("ConsumedQuantity", QUANTITY_TYPE, BOTH),
    ("ConsumedUnit", TEXT, BOTH),
    ("ContractedCost", MONEY_TYPE, BOTH),
    ("ContractedUnitPrice", MONEY_TYPE, BOTH),
    ("EffectiveCost", MONEY_TYPE, BOTH),
    ("InvoiceId", TEXT, ONLY_1_2),
    ("InvoiceIssuerName", TEXT, BOTH),
    ("ListCost", MONEY_TYPE, BOTH),
    ("ListUnitPrice", MONEY_TYPE, BOTH),
    ("PricingCategory", TEXT, BOTH),
    ("PricingCurrency", TEXT, ONLY_1_2),
    ("PricingCurrencyContractedUnitPrice", MONEY_TYPE, ONLY_1_2),
    ("PricingCurrencyEffectiveCost", MONEY_TYPE, ONLY_1_2),
    ("PricingCurrencyListUnitPrice", MONEY_TYPE, ONLY_1_2),
    ("PricingQuantity", QUANTITY_TYPE, BOTH),
    ("PricingUnit", TEXT, BOTH),
    ("ProviderName", TEXT, BOTH),
    ("PublisherName", TEXT, BOTH),
    ("RegionId", TEXT, ONLY_1_0),
    ("RegionName", TEXT, ONLY_1_0),
    ("ResourceId", TEXT, ONLY_1_0),
    ("ResourceName", TEXT, ONLY_1_0),
    ("ResourceType", TEXT, ONLY_1_0),
    ("ServiceCategory", TEXT, BOTH),
    ("ServiceName", TEXT, BOTH),
    ("ServiceSubcategory", TEXT, ONLY_1_2),
    ("SkuId", TEXT, BOTH),
    ("SkuMeter", TEXT, ONLY_1_2),
    ("SkuPriceDetails", TEXT, ONLY_1_2),
    ("SkuPriceId", TEXT, BOTH),
    ("SubAccountId", TEXT, BOTH),
    ("SubAccountName", TEXT, BOTH),
    ("Tags", TEXT, BOTH),
    # x_ columns, after every FOCUS column
    ("x_Model", TEXT, ONLY_1_0),
    ("x_ConsumerId", TEXT, BOTH),
    ("x_Events", COUNT, BOTH),
    ("x_Requests", COUNT, BOTH),
    ("x_UnpricedEvents", COUNT, BOTH),
    ("x_BilledCostSource", TEXT, BOTH),
    ("x_CostDriver", TEXT, BOTH),
    ("x_ExchangeRate", RATE_TYPE, BOTH),
    ("x_ExchangeRateDate", TEXT, BOTH),
)
TYPES: dict[str, str] = {name: kind for name, kind, _versions in COLUMNS}
VERSIONS: dict[str, tuple[str, ...]] = {
    version: tuple(name for name, _kind, versions in COLUMNS if version in versions)
    for version in ("1.0", "1.2")
}
DEFAULT_VERSION = "1.2"


def columns(version: str) -> tuple[str, ...]:
    """The columns of ``version``, in file order; a clear error for any other version."""
    try:
        return VERSIONS[version]
    except KeyError:
        known = ", ".join(VERSIONS)
        raise ValueError(f"FOCUS version {version!r} is not exported: use one of {known}") from None


def schema(version: str, money_scale: int = MONEY_SCALE) -> pa.Schema:
    """The Parquet schema of ``version`` (a clear error naming the extra without pyarrow).
    Money has ``money_scale`` places: 18 (the ledger's) fit ``decimal128(38, 18)``; more (a
    file converted to another currency: 18 + the rate's places) take ``decimal256(76, scale)``,
    so converted figures stay exact."""
    names = columns(version)
    require_pyarrow("a Parquet FOCUS file")
    import pyarrow as pa

    money = (
        pa.decimal128(38, MONEY_SCALE)
        if money_scale <= MONEY_SCALE
        else pa.decimal256(76, money_scale)
    )
    arrow_types = {
        MONEY_TYPE: money,
        RATE_TYPE: pa.decimal128(38, 12),
        QUANTITY_TYPE: pa.decimal128(38, 9),
        TIME_TYPE: pa.timestamp("ms", tz="UTC"),
        TEXT: pa.string(),
        COUNT: pa.int64(),
    }
    return pa.schema([(name, arrow_types[TYPES[name]]) for name in names])
