//! List prices (`cost/prices.toml`).

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::errors::CostError;

/// `usd` for every `per` units, after `free` units a month.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Price {
    pub usd: f64,
    pub per: f64,
    #[serde(default)]
    pub free: f64,
    pub source: String,
}

impl Price {
    /// Units billed after the free allowance, and what they cost.
    pub fn charge(&self, quantity: f64) -> (f64, f64) {
        let billable = (quantity - self.free).max(0.0);
        (billable, billable / self.per * self.usd)
    }
}

/// One cloud's region and prices by item name.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CloudPrices {
    pub region: String,
    #[serde(flatten)]
    pub items: BTreeMap<String, Price>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct PriceList {
    /// When the figures were written down.
    pub as_of: String,
    pub aws: CloudPrices,
    pub gcp: CloudPrices,
    pub azure: CloudPrices,
}

impl PriceList {
    /// Parses and checks a price list: every price finite, non-negative,
    /// `per` positive, a source page named.
    pub fn parse(text: &str, source: &str) -> Result<Self, CostError> {
        let list: PriceList = toml::from_str(text).map_err(|e| CostError::Parse {
            file: source.to_string(),
            reason: e.to_string(),
        })?;
        for (cloud, prices) in [
            ("aws", &list.aws),
            ("gcp", &list.gcp),
            ("azure", &list.azure),
        ] {
            for (item, price) in &prices.items {
                let valid = price.usd.is_finite()
                    && price.usd >= 0.0
                    && price.per.is_finite()
                    && price.per > 0.0
                    && price.free.is_finite()
                    && price.free >= 0.0
                    && price.source.starts_with("https://");
                if !valid {
                    return Err(CostError::BadPrice {
                        file: source.to_string(),
                        item: format!("{cloud}.{item}"),
                    });
                }
            }
        }
        Ok(list)
    }
}
