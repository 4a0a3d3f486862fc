#pragma once

#include <algorithm>
#include <cstddef>
#include <numeric>
#include <utility>
#include <vector>

namespace phoenix::base {

// Sorts `items` by `key(item)` (stable), moving each element exactly once. For large elements
// this is much cheaper than std::sort, which moves elements on every swap.
template <class T, class KeyFn>
void sort_by_key(std::vector<T>& items, KeyFn key) {
  std::vector<std::size_t> order(items.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return key(items[a]) < key(items[b]); });
  std::vector<T> sorted;
  sorted.reserve(items.size());
  for (std::size_t i : order) sorted.push_back(std::move(items[i]));
  items = std::move(sorted);
}

}  // namespace phoenix::base
