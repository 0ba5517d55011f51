package protocol

import (
	"cmp"
	"fmt"
	"strconv"
	"strings"
)

// ReleaseVersion is a firmware release version in the seed's form v-x.y.z (e.g. v-1.4.0),
// ordered like semantic versions without pre-release or build parts.
type ReleaseVersion struct {
	Major, Minor, Patch uint32
}

// ParseReleaseVersion parses v-x.y.z where each part is 0 or a decimal without a leading zero
// of at most 9 digits. Anything else (v1.2.3, 1.2.3, v-1.2, v-01.2.3, v-1.2.3-rc1, spaces) is
// refused, so one release has exactly one spelling.
func ParseReleaseVersion(s string) (ReleaseVersion, error) {
	rest, ok := strings.CutPrefix(s, "v-")
	parts := strings.Split(rest, ".")
	if !ok || len(parts) != 3 {
		return ReleaseVersion{}, fmt.Errorf("protocol: version %q is not of the form v-x.y.z", s)
	}
	var n [3]uint32
	for i, p := range parts {
		if p == "" || len(p) > 9 || len(p) > 1 && p[0] == '0' {
			return ReleaseVersion{}, fmt.Errorf("protocol: version %q is not of the form v-x.y.z", s)
		}
		for j := 0; j < len(p); j++ {
			if p[j] < '0' || p[j] > '9' {
				return ReleaseVersion{}, fmt.Errorf("protocol: version %q is not of the form v-x.y.z", s)
			}
		}
		v, _ := strconv.ParseUint(p, 10, 32)
		n[i] = uint32(v)
	}
	return ReleaseVersion{n[0], n[1], n[2]}, nil
}

// ValidReleaseVersion reports whether s is a well-formed v-x.y.z.
func ValidReleaseVersion(s string) bool {
	_, err := ParseReleaseVersion(s)
	return err == nil
}

// String returns the canonical spelling, v-x.y.z.
func (v ReleaseVersion) String() string {
	return fmt.Sprintf("v-%d.%d.%d", v.Major, v.Minor, v.Patch)
}

// Compare returns -1, 0 or +1 as v is older than, equal to or newer than w.
func (v ReleaseVersion) Compare(w ReleaseVersion) int {
	if c := cmp.Compare(v.Major, w.Major); c != 0 {
		return c
	}
	if c := cmp.Compare(v.Minor, w.Minor); c != 0 {
		return c
	}
	return cmp.Compare(v.Patch, w.Patch)
}
