//! Default values for serde's `#[serde(default = "…")]`, written where the field is:
//! `#[serde(default = "crate::defaults::usize::<128>")]` instead of a `fn d128() -> usize`
//! beside each config. A float default is a ratio of integers (`f32::<999, 1000>` is 0.999):
//! the division of two exactly representable integers rounds once, so the value is bit for bit
//! the literal's.

/// `N`.
pub fn usize<const N: usize>() -> usize {
    N
}

/// `NUM / DEN` in single precision.
pub fn f32<const NUM: i32, const DEN: u32>() -> f32 {
    NUM as f32 / DEN as f32
}

/// `NUM / DEN` in double precision.
pub fn f64<const NUM: i64, const DEN: u64>() -> f64 {
    NUM as f64 / DEN as f64
}

/// `true`.
pub fn yes() -> bool {
    true
}

#[cfg(test)]
mod tests {
    #[test]
    fn ratios_are_the_literals_bit_for_bit() {
        assert_eq!(super::f32::<999, 1000>().to_bits(), 0.999f32.to_bits());
        assert_eq!(super::f32::<1, 100_000_000>().to_bits(), 1e-8f32.to_bits());
        assert_eq!(super::f32::<17, 100>().to_bits(), 0.17f32.to_bits());
        assert_eq!(super::f64::<9, 10>().to_bits(), 0.9f64.to_bits());
        assert_eq!(super::f32::<-3, 2>(), -1.5);
        assert_eq!(super::usize::<128>(), 128);
    }
}
