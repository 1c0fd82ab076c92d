// Node MACs as client nodes derive them, computed outside this code:
// `printf node1 | sha1sum` = f937c37e94 9d9e..., and 0x66 before the first five bytes.
export const NODE_MAC = {
  node1: "66:f9:37:c3:7e:94",
  "client-node": "66:8f:ce:48:4f:7b", // 8fce484f7b 04ff...
  "node-a": "66:07:02:c1:cc:60", // 0702c1cc60 ff9e...
} as const;
