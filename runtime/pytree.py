"""Pytrees: tuple, list, dict (keys sorted), namedtuple, None, and registered classes.

A thin layer over optree with JAX's semantics (``none_is_leaf=False``) in the ``s2sad``
namespace, exposed to users as ``s2sad.tree_util``.
"""

from __future__ import annotations

import optree

NAMESPACE = "s2sad"


def tree_flatten(tree, is_leaf=None):
    leaves, treedef = optree.tree_flatten(tree, is_leaf=is_leaf, none_is_leaf=False,
                                          namespace=NAMESPACE)
    return leaves, treedef


def tree_unflatten(treedef, leaves):
    return optree.tree_unflatten(treedef, leaves)


def tree_leaves(tree, is_leaf=None):
    return optree.tree_leaves(tree, is_leaf=is_leaf, none_is_leaf=False, namespace=NAMESPACE)


def tree_structure(tree, is_leaf=None):
    return optree.tree_structure(tree, is_leaf=is_leaf, none_is_leaf=False, namespace=NAMESPACE)


def tree_map(f, tree, *rest, is_leaf=None):
    return optree.tree_map(f, tree, *rest, is_leaf=is_leaf, none_is_leaf=False,
                           namespace=NAMESPACE)


def register_pytree_node(nodetype, flatten_func, unflatten_func):
    """Register a class as a pytree node (JAX's signature).

    ``flatten_func(x) -> (children, aux_data)``; ``unflatten_func(aux_data, children) -> x``.
    """
    optree.register_pytree_node(nodetype, flatten_func, unflatten_func, namespace=NAMESPACE)
    return nodetype


__all__ = ["tree_flatten", "tree_unflatten", "tree_leaves", "tree_structure", "tree_map",
           "register_pytree_node"]
