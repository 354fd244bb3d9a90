/** The page size CRIU dumps in on x86_64 (and the unit of pagemap counts and pages files). */
export const PAGE_SIZE = 4096;
