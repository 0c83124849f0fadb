//! md5 of up to eight short texts at once, one in each 32-bit lane of
//! AVX2 registers: what a hash rule digests is nearly always a value that
//! fits md5's one 64-byte block (55 bytes or less). For three hashed
//! fields of a 10-field record this takes about 400 instructions a record
//! (callgrind), where md5-many's general kernel, which takes any length,
//! took about 700 with its choosing and arranging of lanes. Longer texts,
//! and CPUs without AVX2, are left to md5-many.

/// The longest text that fits one block: 64 bytes less the `0x80` end
/// mark and the 8-byte length.
pub const MAX_LEN: usize = 55;

/// Whether this CPU runs [`digest`] (checked at run time).
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The md5 of each of `texts` (at most eight, each at most [`MAX_LEN`]
/// bytes) into `sums`; `None` when a text is longer, there are more than
/// eight, or the CPU has no AVX2 (see [`available`]).
pub fn digest(texts: &[&[u8]], sums: &mut [[u8; 16]]) -> Option<()> {
    if texts.len() > 8 || sums.len() < texts.len() || texts.iter().any(|t| t.len() > MAX_LEN) {
        return None;
    }
    #[cfg(target_arch = "x86_64")]
    {
        if !available() {
            return None;
        }
        // Each lane's one block: the text, the end mark, its length in bits.
        let mut blocks = [[0u8; 64]; 8];
        for (block, text) in blocks.iter_mut().zip(texts) {
            block[..text.len()].copy_from_slice(text);
            block[text.len()] = 0x80;
            block[56..].copy_from_slice(&((text.len() as u64) * 8).to_le_bytes());
        }
        // SAFETY: AVX2 is present (checked above).
        let all = unsafe { avx2::blocks(&blocks) };
        sums[..texts.len()].copy_from_slice(&all[..texts.len()]);
        Some(())
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        None
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    /// md5's sine table: the constant added in each of the 64 steps.
    const K: [u32; 64] = [
        0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613,
        0xfd469501, 0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193,
        0xa679438e, 0x49b40821, 0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d,
        0x02441453, 0xd8a1e681, 0xe7d3fbc8, 0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed,
        0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a, 0xfffa3942, 0x8771f681, 0x6d9d6122,
        0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70, 0x289b7ec6, 0xeaa127fa,
        0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665, 0xf4292244,
        0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
        0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb,
        0xeb86d391,
    ];

    /// Transposes eight rows of eight 32-bit words: `r[i][j]` becomes
    /// `out[j][i]`.
    #[target_feature(enable = "avx2")]
    fn transpose(r: [__m256i; 8]) -> [__m256i; 8] {
        let t = [
            _mm256_unpacklo_epi32(r[0], r[1]),
            _mm256_unpackhi_epi32(r[0], r[1]),
            _mm256_unpacklo_epi32(r[2], r[3]),
            _mm256_unpackhi_epi32(r[2], r[3]),
            _mm256_unpacklo_epi32(r[4], r[5]),
            _mm256_unpackhi_epi32(r[4], r[5]),
            _mm256_unpacklo_epi32(r[6], r[7]),
            _mm256_unpackhi_epi32(r[6], r[7]),
        ];
        let u = [
            _mm256_unpacklo_epi64(t[0], t[2]),
            _mm256_unpackhi_epi64(t[0], t[2]),
            _mm256_unpacklo_epi64(t[1], t[3]),
            _mm256_unpackhi_epi64(t[1], t[3]),
            _mm256_unpacklo_epi64(t[4], t[6]),
            _mm256_unpackhi_epi64(t[4], t[6]),
            _mm256_unpacklo_epi64(t[5], t[7]),
            _mm256_unpackhi_epi64(t[5], t[7]),
        ];
        [
            _mm256_permute2x128_si256::<0x20>(u[0], u[4]),
            _mm256_permute2x128_si256::<0x20>(u[1], u[5]),
            _mm256_permute2x128_si256::<0x20>(u[2], u[6]),
            _mm256_permute2x128_si256::<0x20>(u[3], u[7]),
            _mm256_permute2x128_si256::<0x31>(u[0], u[4]),
            _mm256_permute2x128_si256::<0x31>(u[1], u[5]),
            _mm256_permute2x128_si256::<0x31>(u[2], u[6]),
            _mm256_permute2x128_si256::<0x31>(u[3], u[7]),
        ]
    }

    /// The md5 of each lane's one block (padded, its length in place).
    ///
    /// # Safety
    /// The CPU must have AVX2.
    #[target_feature(enable = "avx2")]
    pub unsafe fn blocks(blocks: &[[u8; 64]; 8]) -> [[u8; 16]; 8] {
        // SAFETY (whole body): unaligned loads of 32 bytes inside 64-byte
        // blocks, and stores of 32 bytes inside a 128-byte array.
        unsafe {
            let half = |h: usize| {
                transpose(std::array::from_fn(|lane| {
                    _mm256_loadu_si256(blocks[lane][32 * h..].as_ptr().cast())
                }))
            };
            let (low, high) = (half(0), half(1));
            let m: [__m256i; 16] =
                std::array::from_fn(|j| if j < 8 { low[j] } else { high[j - 8] });
            let init = [0x67452301u32, 0xefcdab89, 0x98badcfe, 0x10325476];
            let (mut a, mut b, mut c, mut d) = (
                _mm256_set1_epi32(init[0] as i32),
                _mm256_set1_epi32(init[1] as i32),
                _mm256_set1_epi32(init[2] as i32),
                _mm256_set1_epi32(init[3] as i32),
            );
            let ones = _mm256_set1_epi32(-1);
            macro_rules! step {
                ($f:expr, $i:expr, $g:expr, $s:literal) => {{
                    let sum = _mm256_add_epi32(
                        _mm256_add_epi32(a, $f),
                        _mm256_add_epi32(m[$g], _mm256_set1_epi32(K[$i] as i32)),
                    );
                    let rotated = _mm256_or_si256(
                        _mm256_slli_epi32::<$s>(sum),
                        _mm256_srli_epi32::<{ 32 - $s }>(sum),
                    );
                    let next = _mm256_add_epi32(b, rotated);
                    a = d;
                    d = c;
                    c = b;
                    b = next;
                }};
            }
            // F = d ^ (b & (c ^ d)), G = c ^ (d & (b ^ c)), H = b ^ c ^ d,
            // I = c ^ (b | !d).
            macro_rules! f {
                () => {
                    _mm256_xor_si256(d, _mm256_and_si256(b, _mm256_xor_si256(c, d)))
                };
            }
            macro_rules! g {
                () => {
                    _mm256_xor_si256(c, _mm256_and_si256(d, _mm256_xor_si256(b, c)))
                };
            }
            macro_rules! h {
                () => {
                    _mm256_xor_si256(_mm256_xor_si256(b, c), d)
                };
            }
            macro_rules! i {
                () => {
                    _mm256_xor_si256(c, _mm256_or_si256(b, _mm256_xor_si256(d, ones)))
                };
            }
            macro_rules! four {
                ($fun:ident, $i:expr, [$g0:expr, $g1:expr, $g2:expr, $g3:expr], [$s0:literal, $s1:literal, $s2:literal, $s3:literal]) => {
                    step!($fun!(), $i, $g0, $s0);
                    step!($fun!(), $i + 1, $g1, $s1);
                    step!($fun!(), $i + 2, $g2, $s2);
                    step!($fun!(), $i + 3, $g3, $s3);
                };
            }
            four!(f, 0, [0, 1, 2, 3], [7, 12, 17, 22]);
            four!(f, 4, [4, 5, 6, 7], [7, 12, 17, 22]);
            four!(f, 8, [8, 9, 10, 11], [7, 12, 17, 22]);
            four!(f, 12, [12, 13, 14, 15], [7, 12, 17, 22]);
            four!(g, 16, [1, 6, 11, 0], [5, 9, 14, 20]);
            four!(g, 20, [5, 10, 15, 4], [5, 9, 14, 20]);
            four!(g, 24, [9, 14, 3, 8], [5, 9, 14, 20]);
            four!(g, 28, [13, 2, 7, 12], [5, 9, 14, 20]);
            four!(h, 32, [5, 8, 11, 14], [4, 11, 16, 23]);
            four!(h, 36, [1, 4, 7, 10], [4, 11, 16, 23]);
            four!(h, 40, [13, 0, 3, 6], [4, 11, 16, 23]);
            four!(h, 44, [9, 12, 15, 2], [4, 11, 16, 23]);
            four!(i, 48, [0, 7, 14, 5], [6, 10, 15, 21]);
            four!(i, 52, [12, 3, 10, 1], [6, 10, 15, 21]);
            four!(i, 56, [8, 15, 6, 13], [6, 10, 15, 21]);
            four!(i, 60, [4, 11, 2, 9], [6, 10, 15, 21]);
            let add = |v, i: u32| _mm256_add_epi32(v, _mm256_set1_epi32(i as i32));
            let (a, b, c, d) = (
                add(a, init[0]),
                add(b, init[1]),
                add(c, init[2]),
                add(d, init[3]),
            );
            // Each lane's a, b, c, d together: lanes 0 and 4 in u[0], 1 and
            // 5 in u[1], and so on.
            let t = [
                _mm256_unpacklo_epi32(a, b),
                _mm256_unpackhi_epi32(a, b),
                _mm256_unpacklo_epi32(c, d),
                _mm256_unpackhi_epi32(c, d),
            ];
            let u = [
                _mm256_unpacklo_epi64(t[0], t[2]),
                _mm256_unpackhi_epi64(t[0], t[2]),
                _mm256_unpacklo_epi64(t[1], t[3]),
                _mm256_unpackhi_epi64(t[1], t[3]),
            ];
            let mut out = [[0u8; 16]; 8];
            let at = out.as_mut_ptr().cast::<__m256i>();
            _mm256_storeu_si256(at, _mm256_permute2x128_si256::<0x20>(u[0], u[1]));
            _mm256_storeu_si256(at.add(1), _mm256_permute2x128_si256::<0x20>(u[2], u[3]));
            _mm256_storeu_si256(at.add(2), _mm256_permute2x128_si256::<0x31>(u[0], u[1]));
            _mm256_storeu_si256(at.add(3), _mm256_permute2x128_si256::<0x31>(u[2], u[3]));
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use md5::{Digest, Md5};

    /// Every length a block holds, in every lane and batch size, against
    /// the md-5 crate; longer texts and larger batches are declined.
    #[test]
    fn digests_are_md5s() {
        if !available() {
            return;
        }
        let texts: Vec<Vec<u8>> = (0..=MAX_LEN)
            .map(|n| (0..n).map(|i| (i * 37 + n * 11) as u8).collect())
            .collect();
        for batch in 1..=8 {
            for chunk in texts.chunks(batch) {
                let refs: Vec<&[u8]> = chunk.iter().map(|t| &t[..]).collect();
                let mut sums = [[0u8; 16]; 8];
                digest(&refs, &mut sums).unwrap();
                for (text, sum) in chunk.iter().zip(&sums) {
                    assert_eq!(sum[..], Md5::digest(text)[..], "{} bytes", text.len());
                }
            }
        }
        // RFC 1321's own example.
        let mut sums = [[0u8; 16]; 1];
        digest(&[b"abc"], &mut sums).unwrap();
        let hex: String = sums[0].iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "900150983cd24fb0d6963f7d28e17f72");
        let long = [0u8; MAX_LEN + 1];
        assert!(digest(&[&long[..]], &mut sums).is_none());
        let nine = [&b""[..]; 9];
        assert!(digest(&nine, &mut [[0u8; 16]; 9]).is_none());
    }
}
