// "Did you mean" for names a user typed (node names, op types, config keys): the closest candidate by edit
// distance, case differences counting as small. Written here because no library the project uses offers it.
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace oq {

// Edit distance (optimal string alignment: a swap of two adjacent letters costs 1, as an insertion, a deletion or a
// substitution), a substitution that differs only in letter case costing nothing.
size_t name_distance(std::string_view a, std::string_view b);

// The candidate closest to `typed` when it is close enough to be a likely typo (distance at most 1 + a third
// of the length, and less than the typed length), else empty. Ties: the first in `candidates`.
std::string closest_name(std::string_view typed, const std::vector<std::string>& candidates);
// The same with an explicit bound on the distance (0: letter case only).
std::string closest_name(std::string_view typed, const std::vector<std::string>& candidates, size_t max_distance);

// ", did you mean 'X'?" for closest_name's answer, or an empty string.
std::string did_you_mean(std::string_view typed, const std::vector<std::string>& candidates);

}  // namespace oq
