"""FOCUS versions: the columns each exported version has, in file order, with Parquet types.

Column IDs are the specification's own (FinOps-Open-Cost-and-Usage-Spec/FOCUS_Spec, tags
``v1.0`` and ``v1.2``, ``specification/columns/*.md``); docs/focus.md lists the sources.

- 1.0: every column of FOCUS 1.0 (mandatory, recommended and conditional: the FinOps
  Foundation's validator requires the conditional ones to be present, null where they do not
  apply: commitment discounts, regions, resources), then ``x_`` columns for what 1.0 lacks
  (the model and token type, which 1.1 put in ``SkuMeter``/``SkuPriceDetails``).
- 1.2: the mandatory columns, the conditional ones that apply to metered API usage
  (``ConsumedQuantity``/``Unit``, unit prices, ``PricingCategory``, ``SkuId``, ``SkuMeter``,
  ``SkuPriceId``, ``SkuPriceDetails``, ``Tags``) and the recommended ``ChargeFrequency``,
  ``InvoiceId`` and ``ServiceSubcategory``.

``x_`` columns (FOCUS has none of these): ``x_ConsumerId`` (the ledger's customer; FOCUS has
no consumer column up to 1.2), ``x_Events``, ``x_Requests``, ``x_UnpricedEvents``,
``x_BilledCostSource`` (``estimate`` or ``invoice``) and ``x_CostDriver`` (the token type or
unit name).
"""

from __future__ import annotations

import pyarrow as pa

MONEY_TYPE = pa.decimal128(38, 18)
QUANTITY_TYPE = pa.decimal128(38, 9)
TIME_TYPE = pa.timestamp("ms", tz="UTC")
TEXT = pa.string()
COUNT = pa.int64()

TYPES: dict[str, pa.DataType] = {
    "AvailabilityZone": TEXT,
    "BilledCost": MONEY_TYPE,
    "BillingAccountId": TEXT,
    "BillingAccountName": TEXT,
    "BillingCurrency": TEXT,
    "BillingPeriodEnd": TIME_TYPE,
    "BillingPeriodStart": TIME_TYPE,
    "ChargeCategory": TEXT,
    "ChargeClass": TEXT,
    "ChargeDescription": TEXT,
    "ChargeFrequency": TEXT,
    "ChargePeriodEnd": TIME_TYPE,
    "ChargePeriodStart": TIME_TYPE,
    "CommitmentDiscountCategory": TEXT,
    "CommitmentDiscountId": TEXT,
    "CommitmentDiscountName": TEXT,
    "CommitmentDiscountStatus": TEXT,
    "CommitmentDiscountType": TEXT,
    "ConsumedQuantity": QUANTITY_TYPE,
    "ConsumedUnit": TEXT,
    "ContractedCost": MONEY_TYPE,
    "ContractedUnitPrice": MONEY_TYPE,
    "EffectiveCost": MONEY_TYPE,
    "InvoiceId": TEXT,
    "InvoiceIssuerName": TEXT,
    "ListCost": MONEY_TYPE,
    "ListUnitPrice": MONEY_TYPE,
    "PricingCategory": TEXT,
    "PricingQuantity": QUANTITY_TYPE,
    "PricingUnit": TEXT,
    "ProviderName": TEXT,
    "PublisherName": TEXT,
    "RegionId": TEXT,
    "RegionName": TEXT,
    "ResourceId": TEXT,
    "ResourceName": TEXT,
    "ResourceType": TEXT,
    "ServiceCategory": TEXT,
    "ServiceName": TEXT,
    "ServiceSubcategory": TEXT,
    "SkuId": TEXT,
    "SkuMeter": TEXT,
    "SkuPriceDetails": TEXT,
    "SkuPriceId": TEXT,
    "SubAccountId": TEXT,
    "SubAccountName": TEXT,
    "Tags": TEXT,
    "x_ConsumerId": TEXT,
    "x_Model": TEXT,
    "x_Events": COUNT,
    "x_Requests": COUNT,
    "x_UnpricedEvents": COUNT,
    "x_BilledCostSource": TEXT,
    "x_CostDriver": TEXT,
}

EXTENSIONS = (
    "x_ConsumerId",
    "x_Events",
    "x_Requests",
    "x_UnpricedEvents",
    "x_BilledCostSource",
    "x_CostDriver",
)
FOCUS_1_0 = (
    "AvailabilityZone",
    "BilledCost",
    "BillingAccountId",
    "BillingAccountName",
    "BillingCurrency",
    "BillingPeriodEnd",
    "BillingPeriodStart",
    "ChargeCategory",
    "ChargeClass",
    "ChargeDescription",
    "ChargeFrequency",
    "ChargePeriodEnd",
    "ChargePeriodStart",
    "CommitmentDiscountCategory",
    "CommitmentDiscountId",
    "CommitmentDiscountName",
    "CommitmentDiscountStatus",
    "CommitmentDiscountType",
    "ConsumedQuantity",
    "ConsumedUnit",
    "ContractedCost",
    "ContractedUnitPrice",
    "EffectiveCost",
    "InvoiceIssuerName",
    "ListCost",
    "ListUnitPrice",
    "PricingCategory",
    "PricingQuantity",
    "PricingUnit",
    "ProviderName",
    "PublisherName",
    "RegionId",
    "RegionName",
    "ResourceId",
    "ResourceName",
    "ResourceType",
    "ServiceCategory",
    "ServiceName",
    "SkuId",
    "SkuPriceId",
    "SubAccountId",
    "SubAccountName",
    "Tags",
    "x_Model",
    *EXTENSIONS,
)
FOCUS_1_2 = (
    "BilledCost",
    "BillingAccountId",
    "BillingAccountName",
    "BillingCurrency",
    "BillingPeriodEnd",
    "BillingPeriodStart",
    "ChargeCategory",
    "ChargeClass",
    "ChargeDescription",
    "ChargeFrequency",
    "ChargePeriodEnd",
    "ChargePeriodStart",
    "ConsumedQuantity",
    "ConsumedUnit",
    "ContractedCost",
    "ContractedUnitPrice",
    "EffectiveCost",
    "InvoiceId",
    "InvoiceIssuerName",
    "ListCost",
    "ListUnitPrice",
    "PricingCategory",
    "PricingQuantity",
    "PricingUnit",
    "ProviderName",
    "PublisherName",
    "ServiceCategory",
    "ServiceName",
    "ServiceSubcategory",
    "SkuId",
    "SkuMeter",
    "SkuPriceDetails",
    "SkuPriceId",
    "SubAccountId",
    "SubAccountName",
    "Tags",
    *EXTENSIONS,
)
VERSIONS: dict[str, tuple[str, ...]] = {"1.0": FOCUS_1_0, "1.2": FOCUS_1_2}
DEFAULT_VERSION = "1.2"


def columns(version: str) -> tuple[str, ...]:
    """The columns of ``version``, in file order; a clear error for any other version."""
    try:
        return VERSIONS[version]
    except KeyError:
        known = ", ".join(VERSIONS)
        raise ValueError(f"FOCUS version {version!r} is not exported: use one of {known}") from None


def schema(version: str) -> pa.Schema:
    """The Parquet schema of ``version``."""
    return pa.schema([(name, TYPES[name]) for name in columns(version)])
